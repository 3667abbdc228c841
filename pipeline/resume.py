"""Training that resumes where it stopped.

After every whole epoch, `train` keeps a backup in train-backup/: the model with its
optimiser state, the history so far, the seconds spent and the MLflow run. The folder is
outside DVC's outputs (DVC deletes those before it runs a stage) and ignored by git.

A backup belongs to a fingerprint of everything that decides the run: the training
parameters, the data and the training code (train.py, model.py). `train` with the same
fingerprint resumes from the backup, in the same MLflow run; with any other, it throws the
backup away and starts afresh. A run that finishes deletes its backup.

Resuming gives the run that never stopped only because each epoch's batches depend on
the seed and the epoch's number alone (pipeline/train.py).
"""

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.paths import BACKUP_DIR, written_whole

if TYPE_CHECKING:
    import keras

# The code that decides what an epoch makes: a change to another module keeps the backup.
TRAINING_CODE = [Path(__file__).with_name(name) for name in ("train.py", "model.py")]


def state_path() -> Path:
    return BACKUP_DIR / "state.json"


@dataclass
class Backup:
    """What a stopped run had done when it last finished an epoch."""

    fingerprint: str
    run_id: str
    epochs: int  # epochs finished
    history: dict[str, list[float]]  # per-epoch metrics, as Keras names them
    seconds: float  # spent training so far

    @property
    def model_path(self) -> Path:
        return BACKUP_DIR / f"epoch-{self.epochs}.keras"


def fingerprint(settings: dict) -> str:
    """A digest of the settings given (parameters, data checksums) and of the training
    code: a change to any of them makes a backup useless."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for module in TRAINING_CODE:
        digest.update(module.read_bytes())
    return digest.hexdigest()


def load(fingerprint: str) -> Backup | None:
    """The backup of a stopped run with this fingerprint. Any other backup, or one that
    cannot be read, is deleted, and None returned."""
    try:
        backup = Backup(**json.loads(state_path().read_text()))
    except (OSError, ValueError, TypeError):
        backup = None
    if backup is None or backup.fingerprint != fingerprint or not backup.model_path.is_file():
        discard()
        return None
    return backup


def discard() -> None:
    shutil.rmtree(BACKUP_DIR, ignore_errors=True)


def save(model: "keras.Model", backup: Backup) -> None:
    """Write the model first and the state naming it last, each whole: a crash between
    the two leaves the previous epoch's backup, which is still good."""
    with written_whole(backup.model_path) as path:
        model.save(path)
    with written_whole(state_path()) as path:
        path.write_text(json.dumps(backup.__dict__) + "\n")
    for older in BACKUP_DIR.glob("epoch-*.keras"):
        if older != backup.model_path:
            older.unlink()


def every_whole_epoch(backup: Backup) -> "keras.callbacks.Callback":
    """A Keras callback: at the end of each whole epoch, its metrics go to the MLflow run
    and into the backup's history, its time into the backup's seconds, and the model into
    the backup. An epoch cut short by a stop request (`model.stop_training`) is neither
    logged nor kept: the resumed run does it again.

    Keras and MLflow load here, not when this module is imported: `train` checks the
    store and starts its run first, so that a store it cannot use says so at once."""
    import keras
    import mlflow

    class EveryWholeEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if self.model.stop_training:
                return
            logs = {name: float(value) for name, value in (logs or {}).items()}
            for name, value in logs.items():
                backup.history.setdefault(name, []).append(value)
            mlflow.log_metrics(logs, step=epoch)
            backup.epochs = epoch + 1
            backup.seconds += time.perf_counter() - self.started
            save(self.model, backup)

    return EveryWholeEpoch()
