"""Where runs and models are kept: $MLFLOW_TRACKING_URI, or SQLite at the repository root."""

import os
from pathlib import Path

import mlflow

# DVC sets DVC_ROOT to the user's repository, also when `dvc exp run --temp` runs the
# stages in a copy under .dvc/tmp/exps (a store there would be thrown away).
ROOT = Path(os.environ.get("DVC_ROOT", ".")).resolve()


# The parameter sections that decide what a training run makes: every run logs them
# (dvc.yaml declares them for the stages that log them).
TRAINING_SECTIONS = ("preprocess", "train")


def training_params(params: dict) -> dict[str, object]:
    """{'train': {'epochs': 12}, ...} -> {'train.epochs': 12, ...}, as MLflow parameters."""
    return {
        f"{section}.{key}": value
        for section in TRAINING_SECTIONS
        for key, value in params[section].items()
    }


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ROOT / 'mlflow.db'}"


def use_store(experiment: str | None = None) -> None:
    """Point MLflow at the store and, when given, at the experiment (created if missing)."""
    mlflow.set_tracking_uri(tracking_uri())
    if experiment is None or mlflow.get_experiment_by_name(experiment):
        pass
    elif "MLFLOW_TRACKING_URI" in os.environ:
        mlflow.create_experiment(experiment)  # the server decides where artifacts go
    else:
        mlflow.create_experiment(experiment, artifact_location=(ROOT / "mlruns").as_uri())
    if experiment:
        mlflow.set_experiment(experiment)


def describe_model(uri: str) -> str:
    """'mnist-cnn@champion (version 3)' for a registry URI that names a version.

    Raises LookupError with the command that fixes it when the URI names nothing.
    """
    from mlflow.exceptions import MlflowException

    if not uri.startswith("models:/"):
        return uri
    name, _, alias = uri.removeprefix("models:/").partition("@")
    client = mlflow.MlflowClient()
    try:
        if alias:
            version = client.get_model_version_by_alias(name, alias).version
            return f"{name}@{alias} (version {version})"
        name, _, version = name.partition("/")
        client.get_model_version(name, version)
        return f"{name} version {version}"
    except MlflowException:
        raise LookupError(
            f"{uri} does not exist in {tracking_uri()}: run `make run` to train and register "
            "a model, or `python -m pipeline.promote VERSION` to choose one"
        ) from None
