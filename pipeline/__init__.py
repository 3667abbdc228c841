"""The DVC stages that turn MNIST into a registered model: one module per stage."""
