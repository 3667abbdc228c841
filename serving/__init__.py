"""The registered model's picture-to-digits code, and the HTTP endpoint that serves it."""
