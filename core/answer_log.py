"""One line of an answer log: what is recorded about a picture the model has read.

The production endpoint's model servers append one line per picture they answer to
<home>/answers.jsonl (serving/answers.py); evaluate writes the same lines for the numbers
benchmark to reports/answers.jsonl, which register keeps with the version, so that
`python -m serving.report` can set live traffic beside what the version was evaluated
on. A line holds: time (UTC), version, digits, confidences, and the picture's bytes,
width, height and share of ink. Never the picture itself.
"""

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from core.paths import REPORTS_DIR

ANSWERS_LOG = "answers.jsonl"
EVALUATION_ANSWERS = REPORTS_DIR / ANSWERS_LOG  # the numbers benchmark's (evaluate)
INK_CONTRAST = 64  # grey levels from the picture's median: what counts as ink, dark or light
THUMBNAIL = 64  # pixels: the share of ink is measured on a picture this small


def answer_line(version: str, picture: bytes, answer: dict) -> dict:
    """The log's line for one picture (its encoded bytes) and the model's answer to it."""
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "version": version,
        "digits": answer.get("digits", ""),
        "confidences": [float(box["confidence"]) for box in answer.get("boxes", [])],
        **picture_facts(picture),
    }


def picture_facts(picture: bytes) -> dict:
    """Size and share of ink of a picture the model has just read (so it decodes)."""
    with Image.open(io.BytesIO(picture)) as opened:
        width, height = opened.size
        opened.draft("L", (THUMBNAIL, THUMBNAIL))  # JPEG: decoded small, at once
        grey = opened.convert("L")
        grey.thumbnail((THUMBNAIL, THUMBNAIL))
        histogram = grey.histogram()  # in C: a tenth of the time numpy's median takes
    return {"bytes": len(picture), "width": width, "height": height, "ink": ink_share(histogram)}


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


def read_lines(*logs: Path) -> Iterator[dict]:
    """The lines of these logs that are whole (a line being written is skipped)."""
    for log in logs:
        if not log.exists():
            continue
        with open(log) as lines:
            for line in lines:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue
