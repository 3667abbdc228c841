"""Where the stages read and write, relative to the repository root (where DVC runs them),
and how: `written_whole` puts a file in place only once it is complete, `save_arrays`
writes the same bytes for the same arrays.

dvc.yaml names the same paths as the stages' deps and outs; tests/test_graph.py checks
that it does.
"""

import contextlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

RAW_DIR = Path("data/raw")  # the MNIST files as downloaded (fetch)
PREPARED_DIR = Path("data/prepared")  # train.npz, val.npz, test.npz (preprocess)
PIECES_PATH = Path("data/pieces.npz")  # candidates cut from written numbers (pieces)
MODEL_PATH = Path("models/model.keras")  # the trained network (train)
RUN_PATH = Path("models/mlflow_run.json")  # the MLflow run that trained it (train)
REPORTS_DIR = Path("reports")  # curves, confusion matrix, misclassified digits
METRICS_PATH = REPORTS_DIR / "metrics.json"  # test metrics (evaluate)
FEEDBACK_DIR = Path("feedback/corrections")  # made in the drawing app (pipeline/feedback.py)
BACKUP_DIR = Path("train-backup")  # where a stopped `train` resumes from (pipeline/resume.py)


@contextlib.contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write the file to; it replaces `path` only once
    written and flushed to disk, so a crash or a full disk leaves the old file or none,
    never half of one that a later stage or `dvc commit` would take for good.

    The temporary name keeps the suffix (Keras and NumPy choose the format by it). An
    OSError while writing names `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield partial
        with open(partial, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def save_arrays(path: Path, **arrays) -> None:
    """np.savez without its timestamps: the same arrays make the same bytes, so DVC sees
    an unchanged split as unchanged and does not train again for nothing."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(entry, "w", force_zip64=True) as file:
                np.lib.format.write_array(file, np.asanyarray(array), allow_pickle=False)
