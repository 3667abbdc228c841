"""Stage 2: parse the IDX files into uint8 arrays and hold out a validation split; add
the corrections made in the drawing app when asked to.

Outputs data/prepared/{train,val,test,feedback}.npz, each with `x` (N, 28, 28, 1) and
`y` (N,). The validation split comes out of the 60,000 training images; the test set is
only ever used by the evaluate stage.

The corrections (feedback/corrections, docs/feedback.md) are split by drawing, with the
seed: `feedback_held_out` of the drawings go to feedback.npz, for evaluate to measure
on; with `feedback_repeat` n > 0, the digits of the others join the training split n
times, and train.npz says which set they came from (`feedback_digest`) and how many
they are (`feedback_digits`), for the MLflow run. With n = 0, train.npz is MNIST's alone.
"""

import gzip
import zlib
from pathlib import Path

import numpy as np

from core import feedback
from core.errors import UserError
from core.params import load_params
from core.paths import FEEDBACK_DIR, PREPARED_DIR, RAW_DIR, save_arrays, written_whole

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


class IdxError(UserError, ValueError):
    """An MNIST file that is not what fetch verified; the message names it."""


def read_idx(path: Path, magic: int, shape: tuple[int, ...]) -> np.ndarray:
    """Read a gzipped IDX file whose header must match magic and shape exactly."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except OSError as error:  # includes gzip.BadGzipFile
        raise IdxError(f"{path}: cannot read as gzip: {error}") from None
    except (EOFError, zlib.error) as error:
        raise IdxError(f"{path}: corrupt or truncated gzip stream ({error})") from None
    header_size = 4 + 4 * len(shape)
    if len(data) < header_size:
        raise IdxError(f"{path}: expected an IDX header of {header_size} bytes, found {len(data)}")
    found_magic = int.from_bytes(data[:4], "big")
    if found_magic != magic:
        raise IdxError(f"{path}: expected magic number {magic:#010x}, found {found_magic:#010x}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(len(shape)))
    if dims != shape:
        raise IdxError(f"{path}: expected dimensions {shape}, found {dims}")
    expected = int(np.prod(shape))
    found = len(data) - header_size
    if found != expected:
        raise IdxError(f"{path}: expected {expected} bytes of data after the header, found {found}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def load_split(prefix: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Images as (count, 28, 28, 1) and labels as (count,), both uint8."""
    x = read_idx(RAW_DIR / f"{prefix}-images-idx3-ubyte.gz", IMAGES_MAGIC, (count, 28, 28))
    y = read_idx(RAW_DIR / f"{prefix}-labels-idx1-ubyte.gz", LABELS_MAGIC, (count,))
    if y.max() > 9:
        raise IdxError(f"{prefix} labels: expected values 0 to 9, found {y.max()}")
    return x[..., np.newaxis], y


def split(
    x: np.ndarray, y: np.ndarray, val_size: int, seed: int, train_subset: int | None
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Shuffle once with seed; the first val_size images are validation, the rest training."""
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:val_size], order[val_size:]
    if train_subset is not None:
        train = train[:train_subset]
    return (x[train], y[train]), (x[val], y[val])


def main() -> None:
    params = load_params()["preprocess"]
    try:
        x, y = load_split("train", 60_000)
        test = load_split("t10k", 10_000)
    except IdxError as error:  # the message names the file; this says which stage read it
        raise IdxError(f"preprocess: {error}") from None
    train, val = split(x, y, params["val_size"], params["seed"], params["train_subset"])
    corrections = feedback.load_all(FEEDBACK_DIR)
    learn, held_out = feedback.split_by_drawing(
        corrections, params["feedback_held_out"], params["seed"]
    )
    learned = {"feedback_digest": "", "feedback_digits": 0}
    if params["feedback_repeat"] and learn:
        x_learn, y_learn = feedback.as_arrays(learn)
        repeat = params["feedback_repeat"]
        train = (
            np.concatenate([train[0], *[x_learn] * repeat]),
            np.concatenate([train[1], *[y_learn] * repeat]),
        )
        learned = {"feedback_digest": feedback.digest(FEEDBACK_DIR), "feedback_digits": len(learn)}
    splits = {"train": train, "val": val, "test": test, "feedback": feedback.as_arrays(held_out)}
    PREPARED_DIR.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in splits.items():
        with written_whole(PREPARED_DIR / f"{name}.npz") as path:
            save_arrays(path, x=images, y=labels, **(learned if name == "train" else {}))
        print(f"preprocess: {name}: {len(images)} images")
    if corrections:
        print(
            f"preprocess: {len(corrections)} corrected digits: {len(held_out)} held out, "
            f"{learned['feedback_digits']} x {params['feedback_repeat']} in the training split"
        )


if __name__ == "__main__":
    from core.errors import command

    command(main)
