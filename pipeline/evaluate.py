"""Stage 6: measure the trained model on the 10,000 test images, and check its export.

Writes reports/metrics.json (DVC metrics), reports/confusion.csv (a DVC plot) and
PNGs of the confusion matrix and of misclassified digits. The test accuracy is measured
twice: on the Keras network, and through the model that clients get (the first
`evaluate.pictures` test digits, each sent as a PNG picture), so that the normalisation
cannot cost accuracy unnoticed. The packaged model also reads a fixed part of the
written-numbers benchmark (synthetic/numbers.py, `evaluate.numbers` per set, seed 0): the
share of whole numbers read exactly right, per set; its answers, one line per picture in
the answer log's format (core/answer_log.py), go to reports/answers.jsonl, the version's
own side of the drift report (serving/report.py).

The packaged model runs the ONNX exports of the networks (pipeline/export.py). This stage
checks that they read as the Keras networks do: on the 10,000 test digits and on every
candidate digit the reader cuts from the pictures above, the same likeliest digit and
probabilities within EXPORT_TOLERANCE, and each of those pictures read as the same digits;
on the line of each written number, the line reader's probabilities within the same
tolerance and the same best path. When not, it fails, in one line; metrics.json records
the largest differences under `export`.
"""

import contextlib
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.answer_log import EVALUATION_ANSWERS, answer_line
from core.errors import UserError
from core.params import load_params
from core.paths import (
    LINES_PATH,
    METRICS_PATH,
    MODEL_PATH,
    PREPARED_DIR,
    REPORTS_DIR,
    written_whole,
)
from digit_reader.contract import UNSURE_BELOW, png, read_model
from digit_reader.lines import STRIDE, best_path, padded
from digit_reader.normalize import NOT_A_DIGIT, candidates
from digit_reader.reading import best_reading
from synthetic.numbers import make_sets, score

# The fixed part of the numbers benchmark every version is measured on.
NUMBERS_SEED = 0
NUMBERS_SETS = ("canvases", "drawn", "hard", "photo", "touching")
EXPORT_TOLERANCE = 1e-4  # the largest difference of a probability, export against Keras


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


@contextlib.contextmanager
def packaged_model(keras_path: Path = MODEL_PATH) -> Iterator:
    """The pictures-to-digits model as clients get it, with this .keras network inside."""
    import mlflow

    from core.packaging import model_arguments

    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(f"{tmp}/model", **model_arguments(keras_path))
        yield mlflow.pyfunc.load_model(f"{tmp}/model")


def read_all(model, pictures: list[bytes]) -> list[str]:
    """The digits the pictures-to-digits model reads in each picture."""
    return [result["digits"] for result in read_model(model, pictures)]


def picture_accuracy(model, pictures: list[bytes], y: np.ndarray) -> float:
    """Accuracy of the packaged model on the test digits, each sent as a PNG."""
    digits = read_all(model, pictures)
    return float(np.mean([d == str(label) for d, label in zip(digits, y, strict=True)]))


def read_numbers(model, sets: dict) -> tuple[dict[str, float], float, list[dict]]:
    """Share of whole written numbers read exactly right, per set of the benchmark; the
    share of answers holding an unsure digit: the version's own baseline, that the
    endpoint's unsure alert compares with (docs/monitoring.md); and the answer log's line
    of each picture, which the drift report sets beside live traffic."""
    accuracy, unsure, lines = {}, [], []
    for name, numbers in sets.items():
        answers = read_model(model, [n.png for n in numbers])
        readings = [answer["digits"] for answer in answers]
        accuracy[name] = round(score([n.digits for n in numbers], readings)["right"], 4)
        unsure += [any(b["confidence"] < UNSURE_BELOW for b in a["boxes"]) for a in answers]
        lines += [
            answer_line("evaluation", n.png, a) for n, a in zip(numbers, answers, strict=True)
        ]
    return accuracy, round(float(np.mean(unsure)), 4), lines


def export_check(network, classify, x: np.ndarray, pictures: list[bytes]) -> dict:
    """How the export (classify: the packaged model's network) agrees with the Keras
    network, on the test digits x and on the candidates cut from the pictures; raises
    UserError when it reads any differently."""
    from PIL import Image

    pages = [candidates(Image.open(io.BytesIO(picture))) for picture in pictures]
    batch = np.concatenate([x] + [page.pixels for page in pages])
    keras_says = network.predict(batch, batch_size=1000, verbose=0)[:, :NOT_A_DIGIT]
    onnx_says = np.concatenate(
        [classify(part) for part in np.array_split(batch, len(batch) // 1000 + 1)]
    )
    difference = float(np.abs(keras_says - onnx_says).max())
    same = bool(np.array_equal(keras_says.argmax(axis=1), onnx_says.argmax(axis=1)))
    start, misread = len(x), 0
    for page in pages:
        stop = start + len(page.digits)
        keras_reads, onnx_reads = (
            digits(page, says[start:stop]) for says in (keras_says, onnx_says)
        )
        misread += keras_reads != onnx_reads
        start = stop
    if difference > EXPORT_TOLERANCE or not same or misread:
        raise UserError(
            f"the ONNX export reads differently from the Keras network: probabilities up to "
            f"{difference:.2g} apart (at most {EXPORT_TOLERANCE:g}), "
            f"{'the same' if same else 'other'} likeliest digits, {misread} of "
            f"{len(pictures)} pictures read as other digits; "
            "export it again with `dvc repro export`"
        )
    return {
        "max_probability_difference": float(f"{difference:.3g}"),
        "same_digits": same and not misread,
        "digits": len(batch),
    }


def lines_export_check(reader, pictures: list[bytes]) -> dict:
    """How the line reader's export agrees with the Keras line reader on the pictures'
    lines: probabilities within EXPORT_TOLERANCE, the same best paths."""
    import keras
    from PIL import Image

    pages = [candidates(Image.open(io.BytesIO(picture))) for picture in pictures]
    pages = [page for page in pages if page.line is not None]

    network = keras.models.load_model(LINES_PATH, compile=False)
    difference, misread = 0.0, 0
    for page in pages:
        frames = page.line.pixels.shape[1] // STRIDE  # as DigitReader.read_line
        logits = network(padded(page.line), training=False)[0, :frames]
        keras_says = np.asarray(keras.ops.softmax(logits, axis=-1))
        onnx_says = reader.read_line(page)
        difference = max(difference, float(np.abs(keras_says - onnx_says).max()))
        misread += best_path(keras_says) != best_path(onnx_says)
    if difference > EXPORT_TOLERANCE or misread:
        raise UserError(
            f"the line reader's ONNX export reads differently from Keras': probabilities "
            f"up to {difference:.2g} apart (at most {EXPORT_TOLERANCE:g}), {misread} of "
            f"{len(pages)} lines read as other digits; export it again with `dvc repro export`"
        )
    return {"max_probability_difference": float(f"{difference:.3g}"), "lines": len(pages)}


def digits(page, probabilities: np.ndarray) -> str:
    """The digits the reader reads in a page with these probabilities. (Not the boxes: at
    a near-tie between two cuts, differences of 1e-6 may choose the other cut, with the
    same digits: test digit 8720, a 1 with a speck beside it, for the committed network.)"""
    return "".join(str(p.argmax()) for _, p in best_reading(page, probabilities))


def main() -> None:
    p = load_params()["evaluate"]
    import keras

    from pipeline import plots

    test = np.load(PREPARED_DIR / "test.npz")
    x, y = test["x"], test["y"].astype(int)
    network = keras.models.load_model(MODEL_PATH)  # compiled as trained: its loss and metrics
    loss = network.evaluate(x, y, batch_size=1000, verbose=0, return_dict=True)["loss"]
    predicted = digits_read(network, x)
    accuracy = float(np.mean(predicted == y))
    matrix, per_class = class_report(y, predicted)
    pictures = [png(image) for image in x[: p["pictures"]]]
    sets = make_sets(x[..., 0], y, NUMBERS_SEED, p["numbers"], names=NUMBERS_SETS)
    with packaged_model() as model:
        from_pictures = picture_accuracy(model, pictures, y[: len(pictures)])
        numbers, unsure_share, lines = read_numbers(model, sets)
        written = [number.png for numbers in sets.values() for number in numbers]
        reader = model.unwrap_python_model()
        export = export_check(network, reader.classify, x, pictures + written)
        export["line_reader"] = lines_export_check(reader, written)
    corrected = feedback_accuracy(network, np.load(PREPARED_DIR / "feedback.npz"))

    REPORTS_DIR.mkdir(exist_ok=True)
    metrics = {
        "test": {
            "accuracy": round(accuracy, 4),
            "loss": round(float(loss), 4),
            "picture_accuracy": round(from_pictures, 4),
            "pictures": len(pictures),
        },
        "numbers": numbers,
        "unsure_share": unsure_share,
        "feedback": corrected,
        "export": export,
        "per_class": per_class,
    }
    with written_whole(METRICS_PATH) as path:
        path.write_text(json.dumps(metrics, indent=2) + "\n")
    with written_whole(EVALUATION_ANSWERS) as path:
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    rows = "\n".join(f"{t},{p}" for t, p in zip(y, predicted, strict=True))
    with written_whole(REPORTS_DIR / "confusion.csv") as path:
        path.write_text("actual,predicted\n" + rows + "\n")
    plots.confusion_matrix(matrix, REPORTS_DIR / "confusion.png")
    wrong = np.flatnonzero(predicted != y)
    plots.misclassified(x[wrong], y[wrong], predicted[wrong], REPORTS_DIR / "misclassified.png")
    print(
        f"evaluate: test accuracy {accuracy:.4f} (as pictures: {from_pictures:.4f}), "
        f"loss {loss:.4f}, {len(wrong)} misclassified; whole numbers read right: "
        + ", ".join(f"{name} {right:.2%}" for name, right in numbers.items())
        + (
            f"; held-out corrections from the app: {corrected['accuracy']:.2%} of "
            f"{corrected['digits']}"
            if corrected["digits"]
            else ""
        )
        + f"; the ONNX exports read the same (probabilities within "
        f"{export['max_probability_difference']:.2g}, the line reader's within "
        f"{export['line_reader']['max_probability_difference']:.2g})"
    )


def digits_read(network, x: np.ndarray) -> np.ndarray:
    """The likeliest digit for each 28x28 image: of the digits alone, as the reader
    takes it for a candidate it keeps (its 11th answer, NOT_A_DIGIT, is for pieces)."""
    return network.predict(x, batch_size=1000, verbose=0)[:, :NOT_A_DIGIT].argmax(axis=1)


def feedback_accuracy(network, held_out) -> dict:
    """{'accuracy': the share of the held-out corrections from the app (preprocess) that
    the network reads as the people who wrote them said, or None when there are none;
    'digits': how many there are}."""
    x, y = held_out["x"], held_out["y"].astype(int)
    if not len(y):
        return {"accuracy": None, "digits": 0}
    predicted = digits_read(network, x)
    return {"accuracy": round(float(np.mean(predicted == y)), 4), "digits": len(y)}


if __name__ == "__main__":
    from core.errors import command

    command(main)
