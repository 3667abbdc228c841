"""The DVC stages that turn MNIST into a registered model (one module per stage), and the
commands that look after what they make: promote (the registry's aliases) and feedback
(the app's corrections)."""
