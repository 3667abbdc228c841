"""What a model server of the production endpoint records about each picture it answers.

`watch(model, version, home, unsure_below)` wraps a loaded pyfunc model's `predict`. After
each batch it counts, in Prometheus' multiprocess files (PROMETHEUS_MULTIPROC_DIR, which
the endpoint sets for its servers), the pictures answered, the digits read, each digit's
confidence, the answers holding a digit below `unsure_below` and the answers with no digit;
and it appends one JSON line per picture to <home>/answers.jsonl: time, version, digits,
confidences, picture bytes, width and height, share of ink. Never the picture itself.

The endpoint (serving/metrics.py) exports the counts of all its servers at /metrics and
rotates the log. A model that answers no `boxes` (the benchmark's identity model) counts as
answering no digit.
"""

import base64
import io
import json
import time
from pathlib import Path

from PIL import Image
from prometheus_client import Counter, Histogram

from digit_reader.contract import COLUMN

ANSWERS_LOG = "answers.jsonl"
INK_CONTRAST = 64  # grey levels from the picture's median: what counts as ink, dark or light
THUMBNAIL = 64  # pixels: the share of ink is measured on a picture this small

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


def watch(model, version: str, home: Path, unsure_below: float):
    """The model, its `predict` recording what it answers (see the module's docstring)."""
    predict = model.predict
    counts = Counts(version)

    def watched_predict(data, params=None):
        answers = predict(data, params=params)
        record(counts, list(data[COLUMN]), answers, home / ANSWERS_LOG, unsure_below)
        return answers

    model.predict = watched_predict
    return model


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


def record(counts: Counts, images: list, answers: list, log: Path, unsure_below: float) -> None:
    lines = []
    for image, answer in zip(images, answers, strict=True):
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
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "version": counts.version,
            "digits": answer.get("digits", ""),
            "confidences": confidences,
            **picture_facts(image),
        }
        lines.append(json.dumps(line) + "\n")
    try:  # one write in append mode: lines of several servers never interleave
        with open(log, "a") as file:
            file.write("".join(lines))
    except OSError:
        pass  # a full disk loses log lines, never an answer


def picture_facts(image: str | bytes) -> dict:
    """Size and share of ink of a picture the model has just read (so it decodes)."""
    data = base64.b64decode(image) if isinstance(image, str) else image
    with Image.open(io.BytesIO(data)) as picture:
        width, height = picture.size
        picture.draft("L", (THUMBNAIL, THUMBNAIL))  # JPEG: decoded small, at once
        picture = picture.convert("L")
        picture.thumbnail((THUMBNAIL, THUMBNAIL))
        histogram = picture.histogram()  # in C: a tenth of the time numpy's median takes
    return {"bytes": len(data), "width": width, "height": height, "ink": ink_share(histogram)}


def ink_share(histogram: list[int]) -> float:
    """The share of pixels more than INK_CONTRAST grey levels from the median, from the
    picture's 256-level histogram."""
    pixels = sum(histogram)
    below, median = 0, 0
    while below + histogram[median] <= pixels // 2:  # the median: half the pixels below
        below += histogram[median]
        median += 1
    background = sum(histogram[max(median - INK_CONTRAST, 0) : median + INK_CONTRAST + 1])
    return round(1 - background / pixels, 4)


def rotate(home: Path, max_bytes: int) -> None:
    """Keep the answer log under about max_bytes: a full one becomes answers.jsonl.1 (the
    one before is dropped). Servers open the log at each write, so they go on in a new one."""
    log = home / ANSWERS_LOG
    if log.exists() and log.stat().st_size > max_bytes:
        log.replace(log.with_name(ANSWERS_LOG + ".1"))
