"""How the DigitReader model is saved and logged: one definition for evaluate and register."""

from pathlib import Path

import numpy as np
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

SERVING_DIR = Path(__file__).resolve().parent
# The code that decides what the model answers (the stages of dvc.yaml depend on it).
MODEL_CODE = [SERVING_DIR / name for name in ("normalize.py", "digit_model.py", "package.py")]

SIGNATURE = ModelSignature(
    # Optional for MLflow, so that a missing column reaches the model's own clear message.
    inputs=Schema([ColSpec("string", "image", required=False)]),
    outputs=Schema([ColSpec("string", "digits")]),
)


def model_arguments(keras_path: Path) -> dict:
    """Arguments of mlflow.pyfunc.save_model and log_model for a trained .keras file."""
    import keras
    import mlflow
    import PIL
    import scipy
    import tensorflow as tf

    return {
        "python_model": str(SERVING_DIR / "digit_model.py"),
        "artifacts": {"keras_model": str(keras_path)},
        "code_paths": [str(SERVING_DIR)],
        "signature": SIGNATURE,
        # Explicit: inferring them costs 10-15 s per log.
        "pip_requirements": [
            f"mlflow=={mlflow.__version__}",
            f"tensorflow=={tf.__version__}",
            f"keras=={keras.__version__}",
            f"numpy=={np.__version__}",
            f"pillow=={PIL.__version__}",
            f"scipy=={scipy.__version__}",
        ],
    }
