"""How the DigitReader model is saved and logged: one definition for evaluate and register.

The model describes itself: its signature names what it takes (`image`) and answers
(`digits`, `boxes`), and it carries an input example, a picture of "42" (example.png),
so that the MLflow UI shows how to call it.
"""

from pathlib import Path

import numpy as np
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, Object, Property, Schema

import digit_reader
from digit_reader.contract import COLUMN, encode

# What a version ships as its code (MLflow copies the folder into the version's
# code/digit_reader): the model's own package and nothing else.
MODEL_PACKAGE = Path(digit_reader.__file__).resolve().parent
# The code that decides what the model answers: the package, and this file (the signature,
# the pip requirements). Its md5 is the version's identity in the registry (code_md5); the
# evaluate and register stages of dvc.yaml depend on it (tests/test_graph.py checks).
MODEL_CODE = sorted(MODEL_PACKAGE.glob("*.py")) + [Path(__file__).resolve()]
EXAMPLE = Path(__file__).resolve().parent / "example.png"

BOX = Object(
    [Property(name, "long") for name in ("x", "y", "width", "height", "digit")]
    + [Property("confidence", "double"), Property("probabilities", Array("double"))]
    + [Property("pixels", "string")]  # the 28x28 digit the network read, a base64 PNG
)
SIGNATURE = ModelSignature(
    # Optional for MLflow, so that a missing column reaches the model's own clear message.
    inputs=Schema([ColSpec("string", COLUMN, required=False)]),
    outputs=Schema([ColSpec("string", "digits"), ColSpec(Array(BOX), "boxes")]),
)


def exported(keras_path: Path) -> Path:
    """Where the ONNX export of a .keras network is (pipeline/export.py): beside it."""
    return keras_path.with_suffix(".onnx")


def line_reader(keras_path: Path) -> Path:
    """Where the line reader (pipeline/lines.py) of a digit network is: beside it."""
    return keras_path.with_name("lines.keras")


def model_arguments(keras_path: Path) -> dict:
    """Arguments of mlflow.pyfunc.save_model and log_model for a trained .keras file, the
    line reader beside it and their ONNX exports, which the model runs."""
    import errno
    from importlib.metadata import version

    lines_path = line_reader(keras_path)
    for path in (lines_path, exported(keras_path), exported(lines_path)):
        if not path.is_file():  # one line (core/errors.py), naming the fix
            problem = "No such file: train and export with `dvc repro export`"
            raise FileNotFoundError(errno.ENOENT, problem, str(path))

    import mlflow
    import pandas as pd
    import PIL
    import scipy

    return {
        "python_model": str(MODEL_PACKAGE / "digit_model.py"),
        # The .keras files ride along: the networks as trained, for whoever wants them.
        "artifacts": {
            "keras_model": str(keras_path),
            "onnx_model": str(exported(keras_path)),
            "lines_keras_model": str(lines_path),
            "lines_onnx_model": str(exported(lines_path)),
        },
        "code_paths": [str(MODEL_PACKAGE)],
        "signature": SIGNATURE,
        "input_example": pd.DataFrame({COLUMN: [encode(EXAMPLE.read_bytes())]}),
        # Explicit: inferring them costs 10-15 s per log.
        "pip_requirements": [
            f"mlflow=={mlflow.__version__}",
            f"onnxruntime=={version('onnxruntime')}",  # no TensorFlow: the model runs the export
            f"numpy=={np.__version__}",
            f"pillow=={PIL.__version__}",
            f"scipy=={scipy.__version__}",
            f"opencv-python-headless=={version('opencv-python-headless')}",
        ],
    }
