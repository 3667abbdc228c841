"""The review folder: pictures the production endpoint was unsure about, kept for a person
to label (`python -m serving.production --review-folder DIR`, `python -m gui --review DIR`).

Each kept picture is two files named by the time it was answered, so that names sort
oldest first: <id>.png (or .jpg: the picture whole, as the client sent it) and <id>.json
(the version that read it, when, and its answer: digits and boxes with the 28x28 pixels
the network read, which a correction needs). The JSON file is written last, each file
whole, so a picture counts once its JSON is there. The folder holds at most `limit`
pictures: keeping one more first drops the oldest, under a lock that the endpoint's
servers share, so the bound holds with any number of them writing at once.

Pictures whose count of digits a person marks wrong move to <folder>/count-wrong/, with
the digits as the person wrote them: they are not corrections of a digit (docs/monitoring.md).
"""

import fcntl
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

REVIEW_MAX = 1000  # pictures kept by default
COUNT_WRONG = "count-wrong"


@dataclass
class Kept:
    """A picture in the review folder, and the answer it was kept for."""

    reading: Path  # <id>.json
    picture: Path  # <id>.png or <id>.jpg
    version: str
    time: str
    answer: dict  # digits and boxes, as the model answered


class ReviewFolder:
    def __init__(self, folder: Path, limit: int = REVIEW_MAX):
        self.folder, self.limit = folder, limit

    def keep(self, picture: bytes, answer: dict, version: str) -> None:
        """Keep an unsure answer's picture, dropping the oldest beyond the limit."""
        self.folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        name = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
        name += f".{int(now % 1 * 1e6):06d}-{secrets.token_hex(3)}"
        reading = {
            "version": version,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "picture": name + suffix(picture),
            "answer": answer,
        }
        with open(self.folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one server at a time counts, drops and adds
            kept = self.readings()
            for old in kept[: max(len(kept) - self.limit + 1, 0)]:
                drop(old)
            write_whole(self.folder / reading["picture"], picture)
            # Numbers from the model's answer may be NumPy's: .item() makes them Python's.
            text = json.dumps(reading, default=lambda number: number.item())
            write_whole(self.folder / f"{name}.json", text.encode())

    def readings(self) -> list[Path]:
        """The JSON files of the pictures kept, oldest first."""
        names = sorted(n for n in os.listdir(self.folder) if n.endswith(".json") and n[0] != ".")
        return [self.folder / name for name in names]

    def pending(self) -> list[Kept]:
        """The pictures waiting for review, oldest first (a damaged one is skipped)."""
        kept = []
        for path in self.readings():
            try:
                reading = json.loads(path.read_text())
                picture = path.with_name(reading["picture"])
                kept.append(
                    Kept(path, picture, reading["version"], reading["time"], reading["answer"])
                )
            except (OSError, ValueError, KeyError):
                continue
        return kept

    def count_wrong(self, kept: Kept, written: str) -> Path:
        """Move a picture whose digits the model counted wrong to count-wrong/, with the
        digits as written; return where it went."""
        target = self.folder / COUNT_WRONG
        target.mkdir(exist_ok=True)
        reading = json.loads(kept.reading.read_text()) | {"written": written}
        os.replace(kept.picture, target / kept.picture.name)
        write_whole(target / kept.reading.name, json.dumps(reading).encode())
        kept.reading.unlink()
        return target / kept.picture.name


def done(kept: Kept) -> None:
    """Take a reviewed picture out of the folder."""
    drop(kept.reading)


def drop(reading: Path) -> None:
    """Remove a kept picture: its JSON first, so that it never counts half there."""
    try:
        picture = reading.with_name(json.loads(reading.read_text())["picture"])
    except (OSError, ValueError, KeyError):
        picture = None
    reading.unlink(missing_ok=True)
    if picture:
        picture.unlink(missing_ok=True)


def write_whole(path: Path, data: bytes) -> None:
    """Write under a temporary name, then rename: readers see the whole file or none. Not
    flushed to disk (core.paths.written_whole is): under load that flush took most of
    an unsure answer's time, and a power cut losing a picture to review loses little."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def suffix(picture: bytes) -> str:
    return ".jpg" if picture.startswith(b"\xff\xd8") else ".png"
