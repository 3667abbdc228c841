"""Corrections made in the drawing app: digits people wrote, labelled by them.

Each correction is one JSON file in feedback/corrections/: the digit as the model saw
it (28x28 pixels, light ink on black as in MNIST, a base64 PNG), its right label, what
the model read, the model version that read it, the time, and the drawing it came from,
kept beside it as <drawing>.png. Every file is written whole under a name of its own (each
drawing gets a random id), so two app windows saving at once, or a crash mid-save, spoil
nothing: a half-written file has a temporary name that is never read. DVC versions the
folder (`dvc add feedback/corrections`, feedback/README.md).

The command that lists, exports and removes them: pipeline/feedback.py.
"""

import base64
import hashlib
import io
import json
import secrets
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.errors import UserError
from core.paths import FEEDBACK_DIR, written_whole


@dataclass
class Correction:
    label: int  # the right digit, as the person said
    read_as: int  # the digit the model read
    model_version: str  # the registered version that read it; "unknown" if not told
    drawing: str  # the drawing's id: its picture is <drawing>.png beside the correction
    box: dict  # where the digit is in the drawing: x, y, width, height
    pixels: str  # the 28x28 digit the model saw, a base64 PNG
    time: str  # when it was saved, UTC, ISO 8601


class FeedbackError(UserError):
    """A correction that is not there or cannot be read; the message names it."""


def new_drawing(picture: bytes, folder: Path = FEEDBACK_DIR) -> str:
    """Keep a drawing (PNG bytes) and return its id, unique across windows and machines."""
    drawing = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)
    with written_whole(folder / f"{drawing}.png") as path:
        path.write_bytes(picture)
    return drawing


def save(correction: Correction, number: int, folder: Path = FEEDBACK_DIR) -> Path:
    """Keep the correction of digit `number` (from 1, left to right) of its drawing; a
    later correction of the same digit replaces it."""
    target = folder / f"{correction.drawing}-{number}.json"
    with written_whole(target) as path:
        # Numbers from the model's answer may be NumPy's: .item() makes them Python's.
        text = json.dumps(asdict(correction), indent=1, default=lambda number: number.item())
        path.write_text(text + "\n")
    return target


def load_all(folder: Path = FEEDBACK_DIR) -> dict[str, Correction]:
    """Every correction in the folder, by name (the file name without .json)."""
    corrections = {}
    for path in sorted(folder.glob("[!.]*.json")):  # a name starting with "." is partial
        try:
            corrections[path.stem] = Correction(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            raise FeedbackError(
                f"{path} is not a correction saved by the app: move it out of the folder"
            ) from None
    return corrections


def digest(folder: Path = FEEDBACK_DIR) -> str:
    """A SHA-256 of every correction and drawing in the folder: which set a model saw."""
    hashed = hashlib.sha256()
    for path in sorted(folder.glob("[!.]*")):
        hashed.update(path.name.encode() + b"\0" + path.read_bytes())
    return hashed.hexdigest()


def split_by_drawing(
    corrections: dict[str, Correction], held_out: float, seed: int
) -> tuple[dict[str, Correction], dict[str, Correction]]:
    """(to learn from, held out): a share `held_out` of the drawings, chosen with seed,
    goes to the second, with all its digits; a digit is never judged by a model that
    learned from its neighbours in the same drawing."""
    drawings = sorted({c.drawing for c in corrections.values()})
    chosen = np.random.default_rng(seed).permutation(len(drawings))[
        : round(held_out * len(drawings))
    ]
    kept = {drawings[i] for i in chosen}
    learn = {name: c for name, c in corrections.items() if c.drawing not in kept}
    return learn, {name: c for name, c in corrections.items() if c.drawing in kept}


def as_arrays(corrections: dict[str, Correction]) -> tuple[np.ndarray, np.ndarray]:
    """The digits as the network reads them, x (n, 28, 28, 1) uint8, and their labels y."""
    from PIL import Image

    x = np.zeros((len(corrections), 28, 28, 1), np.uint8)
    for i, correction in enumerate(corrections.values()):
        picture = Image.open(io.BytesIO(base64.b64decode(correction.pixels)))
        x[i, ..., 0] = np.asarray(picture.convert("L"))
    return x, np.array([c.label for c in corrections.values()], np.uint8)


def summary(corrections: dict[str, Correction]) -> str:
    if not corrections:
        return "no corrections yet: correct a digit in the drawing app (README, The app)"
    labels = Counter(c.label for c in corrections.values())
    versions = Counter(c.model_version for c in corrections.values())
    misread = sum(c.label != c.read_as for c in corrections.values())
    drawings = len({c.drawing for c in corrections.values()})
    lines = [
        f"{len(corrections)} digits from {drawings} drawings ({misread} misread, "
        f"{len(corrections) - misread} read right)",
        "per digit:  " + "  ".join(f"{d}: {labels[d]}" for d in range(10)),
        "per model version that read them:  "
        + "  ".join(f"{v}: {n}" for v, n in sorted(versions.items())),
    ]
    return "\n".join(lines)


def listing(corrections: dict[str, Correction]) -> str:
    return "\n".join(
        f"{name}  {c.label} (read as {c.read_as} by version {c.model_version})  {c.time}"
        for name, c in corrections.items()
    )


def export(name: str, destination: Path, folder: Path = FEEDBACK_DIR) -> list[Path]:
    """Write a correction's digit (28x28) and its drawing as PNG files into destination."""
    correction = find(name, folder)
    destination.mkdir(parents=True, exist_ok=True)
    digit = destination / f"{name}-digit-{correction.label}.png"
    digit.write_bytes(base64.b64decode(correction.pixels))
    drawing = destination / f"{correction.drawing}.png"
    drawing.write_bytes((folder / f"{correction.drawing}.png").read_bytes())
    return [digit, drawing]


def remove(name: str, folder: Path = FEEDBACK_DIR) -> None:
    """Take a correction out; its drawing goes too once no correction uses it."""
    correction = find(name, folder)
    (folder / f"{name}.json").unlink()
    if not any(c.drawing == correction.drawing for c in load_all(folder).values()):
        (folder / f"{correction.drawing}.png").unlink(missing_ok=True)


def find(name: str, folder: Path) -> Correction:
    corrections = load_all(folder)
    if name not in corrections:
        raise FeedbackError(
            f"no correction named {name} in {folder}/: `python -m pipeline.feedback list` "
            "names them all"
        )
    return corrections[name]
