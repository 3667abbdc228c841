"""Where the stages read and write, relative to the repository root (where DVC runs them).

dvc.yaml names the same paths as the stages' deps and outs; tests/test_graph.py checks
that it does.
"""

from pathlib import Path

RAW_DIR = Path("data/raw")  # the MNIST files as downloaded (fetch)
PREPARED_DIR = Path("data/prepared")  # train.npz, val.npz, test.npz (preprocess)
MODEL_PATH = Path("models/model.keras")  # the trained network (train)
RUN_PATH = Path("models/mlflow_run.json")  # the MLflow run that trained it (train)
REPORTS_DIR = Path("reports")  # curves, confusion matrix, misclassified digits
METRICS_PATH = REPORTS_DIR / "metrics.json"  # test metrics (evaluate)
