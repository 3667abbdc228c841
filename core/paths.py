"""Where the stages read and write, and how: `written_whole` puts a file in place only
once it is complete, `save_arrays` writes the same bytes for the same arrays.

Every path is absolute, under ROOT, so a command works from any folder of a clone. ROOT is
the nearest folder upward from the working directory that holds dvc.yaml or params.yaml
(DVC runs each stage there, also in the copy that `dvc exp run --temp` makes; a folder of
params.yaml alone is a workspace of its own, as the tests make), else the clone this
package is in. The MLflow store is the exception: STORE_ROOT is DVC_ROOT where DVC sets it,
the user's repository also when a stage runs in such a copy (a store there would be thrown
away with it).

dvc.yaml names the same paths, relative to ROOT, as the stages' deps and outs;
tests/test_graph.py checks that it does.
"""

import contextlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def find_root(start: Path) -> Path:
    """The nearest folder from start upward holding dvc.yaml or params.yaml, else this
    package's clone."""
    for folder in (start, *start.parents):
        if (folder / "dvc.yaml").is_file() or (folder / "params.yaml").is_file():
            return folder
    return Path(__file__).resolve().parents[1]


ROOT = find_root(Path.cwd().resolve())
STORE_ROOT = Path(os.environ.get("DVC_ROOT") or ROOT).resolve()


def shown(path: str | Path) -> str:
    """A path as the user reads it in a message: relative to ROOT where it is inside."""
    path = Path(path)
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def in_clone(clone: Path, path: Path) -> Path:
    """One of the paths below, in another clone or work folder (a benchmark's, a test's)."""
    return clone / path.relative_to(ROOT)


RAW_DIR = ROOT / "data/raw"  # the MNIST files as downloaded (fetch)
PREPARED_DIR = ROOT / "data/prepared"  # train, val, test and feedback .npz (preprocess)
PIECES_PATH = ROOT / "data/pieces.npz"  # candidates cut from written numbers (pieces)
MODEL_PATH = ROOT / "models/model.keras"  # the trained network (train)
RUN_PATH = ROOT / "models/mlflow_run.json"  # the MLflow run that trained it (train)
LINES_PATH = ROOT / "models/lines.keras"  # the line reader (lines; its export beside it)
LINES_RUN_PATH = ROOT / "models/lines_run.json"  # the MLflow run that trained it (lines)
REPORTS_DIR = ROOT / "reports"  # curves, confusion matrix, misclassified digits
METRICS_PATH = REPORTS_DIR / "metrics.json"  # test metrics (evaluate)
PARAMS_PATH = ROOT / "params.yaml"  # the parameters of every stage (core/params.py)
FEEDBACK_DIR = ROOT / "feedback/corrections"  # made in the drawing app (core/feedback.py)
BACKUP_DIR = ROOT / "train-backup"  # where a stopped `train` resumes from (pipeline/resume.py)


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
