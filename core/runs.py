"""A training run's life in MLflow: the parameters it logs, and Ctrl+C and SIGTERM met
on the way (`marked_run` never leaves a run RUNNING)."""

import contextlib
import signal
from collections.abc import Iterator

from core.errors import Stopped, stop_reason

# The parameter sections that decide what a training run makes: every run logs them
# (dvc.yaml declares them for the stages that log them).
TRAINING_SECTIONS = ("preprocess", "pieces", "train")


def training_params(params: dict) -> dict[str, object]:
    """{'train': {'epochs': 12}, ...} -> {'train.epochs': 12, ...}, as MLflow parameters."""
    return {
        f"{section}.{key}": value
        for section in TRAINING_SECTIONS
        for key, value in params[section].items()
    }


@contextlib.contextmanager
def marked_run(**start_run) -> Iterator:
    """mlflow.start_run that never leaves the run RUNNING: it ends KILLED on Ctrl+C or
    SIGTERM and FAILED on an error, with the reason in the tag `stopped_because`."""
    import mlflow

    with mlflow.start_run(**start_run) as run:
        try:
            yield run
        except BaseException as error:
            killed = isinstance(error, KeyboardInterrupt | Stopped)
            reason = stop_reason(error) if killed else f"{type(error).__name__}: {error}"
            with contextlib.suppress(Exception):  # a store that is gone cannot be told
                mlflow.set_tag("stopped_because", reason[:5000])
                mlflow.end_run("KILLED" if killed else "FAILED")
            raise


class SignalsRecorded:
    """Ctrl+C and SIGTERM noted, not raised, inside a `with` block: for code that must
    stop at a point of its own choosing. (KeyboardInterrupt unwinding through Keras' fit
    once crashed the process inside tf.data's threads.) Leaving the block raises what
    was noted: KeyboardInterrupt, or Stopped for SIGTERM."""

    def __enter__(self) -> "SignalsRecorded":
        self.received: int | None = None
        self.previous = {
            number: signal.signal(number, self.note) for number in (signal.SIGINT, signal.SIGTERM)
        }
        return self

    def note(self, signum: int, frame) -> None:
        self.received = signum

    def __exit__(self, error_type, error, traceback) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        if error_type is None and self.received == signal.SIGINT:
            raise KeyboardInterrupt
        if error_type is None and self.received == signal.SIGTERM:
            raise Stopped("SIGTERM")


def run_exists(run_id: str) -> bool:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.MlflowClient().get_run(run_id)
    except MlflowException:
        return False
    return True
