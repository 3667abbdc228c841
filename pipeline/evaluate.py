"""Stage 4: measure the trained model on the 10,000 test images.

Writes reports/metrics.json (DVC metrics), reports/confusion.csv (a DVC plot) and
PNGs of the confusion matrix and of misclassified digits.
"""

import json
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

    REPORTS_DIR.mkdir(exist_ok=True)
    metrics = {
        "test": {"accuracy": round(accuracy, 4), "loss": round(loss, 4)},
        "per_class": per_class,
    }
    (REPORTS_DIR / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    rows = "\n".join(f"{t},{p}" for t, p in zip(y, predicted, strict=True))
    (REPORTS_DIR / "confusion.csv").write_text("actual,predicted\n" + rows + "\n")
    plots.confusion_matrix(matrix, REPORTS_DIR / "confusion.png")
    wrong = np.flatnonzero(predicted != y)
    plots.misclassified(x[wrong], y[wrong], predicted[wrong], REPORTS_DIR / "misclassified.png")
    print(f"evaluate: test accuracy {accuracy:.4f}, loss {loss:.4f}, {len(wrong)} misclassified")


if __name__ == "__main__":
    main()
