"""What every command shares: where files are (paths), the parameters, the MLflow store
and registry, the run's life and signals, the app's corrections, how the model is
packaged, and the one error rule (errors)."""
