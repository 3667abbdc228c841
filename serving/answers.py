"""What a model server of the production endpoint records about each picture it answers.

`watch(model, version, home, unsure_below, review)` wraps a loaded pyfunc model's `predict`. After
each batch it counts, in Prometheus' multiprocess files (PROMETHEUS_MULTIPROC_DIR, which
the endpoint sets for its servers), the pictures answered, the digits read, each digit's
confidence, the answers holding a digit below `unsure_below` and the answers with no digit;
and it appends one JSON line per picture to <home>/answers.jsonl: time, version, digits,
confidences, picture bytes, width and height, share of ink (core/answer_log.py). Never
the picture itself, unless the endpoint was given a review folder: then each picture of
an unsure answer is kept there, whole, for a person to label (core/review.py).

The endpoint (serving/metrics.py) exports the counts of all its servers at /metrics and
rotates the log. A model that answers no `boxes` (the benchmark's identity model) counts as
answering no digit.
"""

import base64
import json
from pathlib import Path

from prometheus_client import Counter, Histogram

from core.answer_log import ANSWERS_LOG, answer_line
from core.review import ReviewFolder
from digit_reader.contract import COLUMN

PICTURES = Counter("digits_pictures", "Pictures answered", ["version"])
READ = Counter("digits_read", "Digits read", ["version", "digit"])
CONFIDENCE = Histogram(
    "digits_confidence",
    "Confidence of each digit read",
    ["version"],
    buckets=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0),
)
UNSURE = Counter("digits_unsure_answers", "Answers with a digit below the threshold", ["version"])
EMPTY = Counter("digits_empty_answers", "Pictures in which no digit was found", ["version"])


def watch(model, version: str, home: Path, unsure_below: float, review: ReviewFolder | None):
    """The model, its `predict` recording what it answers (see the module's docstring)."""
    predict = model.predict
    counts = Counts(version)

    def watched_predict(data, params=None):
        answers = predict(data, params=params)
        pictures = [decoded(image) for image in data[COLUMN]]
        record(counts, pictures, answers, home / ANSWERS_LOG, unsure_below, review)
        return answers

    model.predict = watched_predict
    return model


def decoded(image: str | bytes) -> bytes:
    return base64.b64decode(image) if isinstance(image, str) else image


class Counts:
    """The metrics of one version, their labelled children looked up once (a server serves
    one version), as they are counted at every request."""

    def __init__(self, version: str):
        self.version = version
        self.pictures = PICTURES.labels(version)
        self.read = {digit: READ.labels(version, str(digit)) for digit in range(10)}
        self.confidence = CONFIDENCE.labels(version)
        self.unsure = UNSURE.labels(version)
        self.empty = EMPTY.labels(version)


def record(
    counts: Counts,
    pictures: list[bytes],
    answers: list,
    log: Path,
    unsure_below: float,
    review: ReviewFolder | None,
) -> None:
    lines = []
    for picture, answer in zip(pictures, answers, strict=True):
        boxes = answer.get("boxes", [])
        confidences = [box["confidence"] for box in boxes]
        counts.pictures.inc()
        for box in boxes:
            counts.read[box["digit"]].inc()
            counts.confidence.observe(box["confidence"])
        if not confidences:
            counts.empty.inc()
        elif min(confidences) < unsure_below:
            counts.unsure.inc()
            if review:
                keep_for_review(review, picture, answer, counts.version)
        lines.append(json.dumps(answer_line(counts.version, picture, answer)) + "\n")
    try:  # one write in append mode: lines of several servers never interleave
        with open(log, "a") as file:
            file.write("".join(lines))
    except OSError:
        pass  # a full disk loses log lines, never an answer


def keep_for_review(review: ReviewFolder, picture: bytes, answer: dict, version: str) -> None:
    try:
        review.keep(picture, answer, version)
    except OSError:
        pass  # a full disk loses a picture to review, never an answer


def rotate(home: Path, max_bytes: int) -> None:
    """Keep the answer log under about max_bytes: a full one becomes answers.jsonl.1 (the
    one before is dropped). Servers open the log at each write, so they go on in a new one."""
    log = home / ANSWERS_LOG
    if log.exists() and log.stat().st_size > max_bytes:
        log.replace(log.with_name(ANSWERS_LOG + ".1"))
