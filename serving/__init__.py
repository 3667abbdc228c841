"""The HTTP endpoints that serve the registered model, and the client that calls them."""
