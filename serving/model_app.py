"""One model server of the production endpoint: MLflow's own scoring app (the one that
`mlflow models serve` runs under uvicorn), serving one version, its answers watched.

    DIGITS_MODEL_URI=models:/mnist-cnn/6 DIGITS_MODEL_VERSION=6 DIGITS_HOME=production \\
    DIGITS_UNSURE_BELOW=0.9 PROMETHEUS_MULTIPROC_DIR=production/metrics \\
    DIGITS_REVIEW_FOLDER=review DIGITS_REVIEW_MAX=1000 \\
    uvicorn --host 127.0.0.1 --port 41023 serving.model_app:app

serving/production.py starts it so, one process per server; without
PROMETHEUS_MULTIPROC_DIR the answers are not watched (`--no-metrics`); without
DIGITS_REVIEW_FOLDER no picture is kept. Running the app
under uvicorn ourselves, rather than through `mlflow models serve`, is what lets it record
each answer; it also spares the parent process that command keeps (docs/serving.md).
"""

import os
from pathlib import Path

from mlflow.pyfunc import scoring_server

model = scoring_server.load_model_with_mlflow_config(os.environ["DIGITS_MODEL_URI"])
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    from core.review import ReviewFolder
    from serving.answers import watch

    folder = os.environ.get("DIGITS_REVIEW_FOLDER")
    model = watch(
        model,
        os.environ["DIGITS_MODEL_VERSION"],
        Path(os.environ["DIGITS_HOME"]),
        float(os.environ["DIGITS_UNSURE_BELOW"]),
        ReviewFolder(Path(folder), int(os.environ["DIGITS_REVIEW_MAX"])) if folder else None,
    )
app = scoring_server.init(model)
