"""Stage 5: make sure the MLflow registry holds the model that dvc.lock describes.

This stage declares no outputs, so DVC never restores it from its run cache: it runs
whenever the model or its metrics change, including when DVC restored the train stage
from its cache without training. It is idempotent: a model version is identified by
the md5 of models/model.keras (the hash in dvc.lock), and a model already registered
is left alone. When the training run is not in this store (the model was trained
against another one), a new run is created for it.
"""

import hashlib
import json
from pathlib import Path

from pipeline.params import load_params
from pipeline.train import MODEL_PATH, RUN_PATH, flatten

METRICS_PATH = Path("reports/metrics.json")
PLOTS = [Path("reports/confusion.png"), Path("reports/misclassified.png")]


def file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def main() -> None:
    params = load_params()
    name = params["mlflow"]["model_name"]

    import mlflow
    from mlflow.exceptions import MlflowException

    from pipeline import tracking

    tracking.use_store(params["mlflow"]["experiment"])
    client = mlflow.MlflowClient()
    md5 = file_md5(MODEL_PATH)
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.tags.get("model_md5") == md5:
            print(f"register: this model is already {name} version {version.version}")
            return

    run_id = json.loads(RUN_PATH.read_text())["run_id"]
    try:
        client.get_run(run_id)
    except MlflowException:
        run_id = new_run_for_restored_model(params, trained_in=run_id)

    test = json.loads(METRICS_PATH.read_text())["test"]
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({"test_accuracy": test["accuracy"], "test_loss": test["loss"]})
        mlflow.log_artifact(str(METRICS_PATH))
        for plot in PLOTS:
            mlflow.log_artifact(str(plot), "plots")
        model_uri = log_model()
    version = mlflow.register_model(
        model_uri,
        name,
        tags={"test_accuracy": str(test["accuracy"]), "run_id": run_id, "model_md5": md5},
    )
    print(f"register: {name} version {version.version} (test accuracy {test['accuracy']})")


def new_run_for_restored_model(params: dict, trained_in: str) -> str:
    """A run in this store for a model DVC restored from its cache (trained elsewhere)."""
    import mlflow

    with mlflow.start_run() as run:
        mlflow.log_params(flatten(params))
        mlflow.set_tags({"restored_from_dvc_cache": "true", "trained_in_run": trained_in})
    print(
        f"register: training run {trained_in} is not in this store; created run {run.info.run_id}"
    )
    return run.info.run_id


def log_model() -> str:
    """Log models/model.keras with its signature into the active run; return its URI."""
    import keras
    import mlflow
    import numpy as np
    import tensorflow as tf
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("uint8"), (-1, 28, 28, 1), "pixels")]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, 10), "probabilities")]),
    )
    info = mlflow.keras.log_model(
        keras.models.load_model(MODEL_PATH),
        name="model",
        signature=signature,
        # Explicit: inferring them costs 10-15 s per log.
        pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"],
    )
    return info.model_uri


if __name__ == "__main__":
    main()
