"""Stage 4: measure the trained model on the 10,000 test images.

Writes reports/metrics.json (DVC metrics), reports/confusion.csv (a DVC plot) and
PNGs of the confusion matrix and of misclassified digits. The test accuracy is measured
twice: on the Keras network, and through the model that clients get (each test digit
sent as a PNG picture), so that the normalisation cannot cost accuracy unnoticed.
"""

import base64
import io
import json
import tempfile
from pathlib import Path

import numpy as np

from pipeline.params import load_params

MODEL_PATH = Path("models/model.keras")
TEST_PATH = Path("data/prepared/test.npz")
REPORTS_DIR = Path("reports")


def class_report(true: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, dict]:
    """Confusion matrix (rows: true, columns: predicted) and per-digit precision/recall/F1."""
    matrix = np.zeros((10, 10), dtype=int)
    np.add.at(matrix, (true, predicted), 1)
    report = {}
    for digit in range(10):
        hits = matrix[digit, digit]
        precision = hits / max(matrix[:, digit].sum(), 1)
        recall = hits / max(matrix[digit].sum(), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        report[str(digit)] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
        }
    return matrix, report


def png_base64(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze()).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def picture_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the packaged pictures-to-digits model on the test digits as PNGs."""
    import mlflow
    import pandas as pd

    from serving.digit_model import MAX_BATCH
    from serving.package import model_arguments

    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(f"{tmp}/model", **model_arguments(MODEL_PATH))
        model = mlflow.pyfunc.load_model(f"{tmp}/model")
        digits = []
        for start in range(0, len(x), MAX_BATCH):
            pictures = [png_base64(image) for image in x[start : start + MAX_BATCH]]
            digits += list(model.predict(pd.DataFrame({"image": pictures}))["digits"])
    return float(np.mean([read == str(label) for read, label in zip(digits, y, strict=True)]))


def main() -> None:
    load_params()  # evaluate has no parameters of its own; still refuse a bad file
    import keras

    from pipeline import plots

    test = np.load(TEST_PATH)
    x, y = test["x"], test["y"].astype(int)
    model = keras.models.load_model(MODEL_PATH)
    probabilities = model.predict(x, batch_size=1000, verbose=0)
    predicted = probabilities.argmax(axis=1)
    loss = float(-np.mean(np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1.0))))
    accuracy = float(np.mean(predicted == y))
    matrix, per_class = class_report(y, predicted)
    from_pictures = picture_accuracy(x, y)

    REPORTS_DIR.mkdir(exist_ok=True)
    metrics = {
        "test": {
            "accuracy": round(accuracy, 4),
            "loss": round(loss, 4),
            "picture_accuracy": round(from_pictures, 4),
        },
        "per_class": per_class,
    }
    (REPORTS_DIR / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    rows = "\n".join(f"{t},{p}" for t, p in zip(y, predicted, strict=True))
    (REPORTS_DIR / "confusion.csv").write_text("actual,predicted\n" + rows + "\n")
    plots.confusion_matrix(matrix, REPORTS_DIR / "confusion.png")
    wrong = np.flatnonzero(predicted != y)
    plots.misclassified(x[wrong], y[wrong], predicted[wrong], REPORTS_DIR / "misclassified.png")
    print(
        f"evaluate: test accuracy {accuracy:.4f} (as pictures: {from_pictures:.4f}), "
        f"loss {loss:.4f}, {len(wrong)} misclassified"
    )


if __name__ == "__main__":
    main()
