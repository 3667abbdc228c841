"""Where runs and models are kept: $MLFLOW_TRACKING_URI, or SQLite at the repository root.

`use_store` checks a tracking server before any work starts and raises StoreError with
one line saying what to fix; `errors_in_one_line` turns that, and the login, permission
and connection errors MLflow raises later, a file that cannot be written, Ctrl+C and
SIGTERM into one line and a non-zero exit. `marked_run` never leaves a run RUNNING.
"""

import base64
import contextlib
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# DVC sets DVC_ROOT to the user's repository, also when `dvc exp run --temp` runs the
# stages in a copy under .dvc/tmp/exps (a store there would be thrown away).
ROOT = Path(os.environ.get("DVC_ROOT", ".")).resolve()


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


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ROOT / 'mlflow.db'}"


# MLflow's own defaults retry a failed request 7 times with a backoff factor of 2 and wait
# 120 s for an answer: a server that is down hangs a command for minutes, without a word.
# `check_server` answers that in seconds; these settings still let a long training run
# ride out a short outage (3 retries after 1, 2 and 4 s). The user's own settings win.
HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
CHECK_TIMEOUT = 5  # seconds the first request to a server may take


class StoreError(Exception):
    """The store cannot be used; the message says what to check."""


def use_store(experiment: str | None = None) -> None:
    """Point MLflow at the store and, when given, at the experiment (created if missing)."""
    import mlflow

    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        for name, value in HTTP_SETTINGS.items():
            os.environ.setdefault(name, value)
        check_server(uri)
    mlflow.set_tracking_uri(uri)
    if experiment is None or mlflow.get_experiment_by_name(experiment):
        pass
    elif "MLFLOW_TRACKING_URI" in os.environ:
        mlflow.create_experiment(experiment)  # the server decides where artifacts go
    else:
        mlflow.create_experiment(experiment, artifact_location=(ROOT / "mlruns").as_uri())
    if experiment:
        mlflow.set_experiment(experiment)


def describe_model(uri: str) -> str:
    """'mnist-cnn@champion (version 3)' for a registry URI that names a version.

    Raises LookupError with the command that fixes it when the URI names nothing.
    """
    version = registered_version(uri)
    if version is None:
        return uri
    name, _, alias = uri.removeprefix("models:/").partition("@")
    return (
        f"{name}@{alias} (version {version})"
        if alias
        else f"{name.split('/')[0]} version {version}"
    )


def registered_version(uri: str) -> str | None:
    """The registry version that a models:/ URI names ('3'); None for a model folder.

    Raises LookupError with the command that fixes it when the URI names nothing.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    if not uri.startswith("models:/"):
        return None
    name, _, alias = uri.removeprefix("models:/").partition("@")
    client = mlflow.MlflowClient()
    try:
        if alias:
            return str(client.get_model_version_by_alias(name, alias).version)
        name, _, version = name.partition("/")
        return str(client.get_model_version(name, version).version)
    except MlflowException:
        raise LookupError(
            f"{uri} does not exist in {tracking_uri()}: run `make run` to train and register "
            "a model, or `python -m pipeline.promote VERSION` to choose one"
        ) from None


def check_model(uri: str) -> None:
    """Raise LookupError naming the version and the fix when a registry URI names nothing,
    or a model whose files are missing or corrupt (someone deleted mlruns/...): said
    here in one line, before a server or the app fails on them with a traceback."""
    import tempfile

    import mlflow
    from mlflow.exceptions import MlflowException

    description = describe_model(uri)
    if not uri.startswith("models:/"):
        return
    # A check, not a download the user asked for: no progress bars (unless they want them).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as folder:
        try:
            files = Path(mlflow.artifacts.download_artifacts(uri, dst_path=folder))
        except (MlflowException, OSError) as error:
            problem = f"its files cannot be read ({str(error).splitlines()[0][:200]})"
        else:
            problem = model_files_problem(files)
    if problem is None:
        return
    raise LookupError(
        f"{description} cannot be loaded: {problem}; make another version the champion "
        "with `python -m pipeline.promote VERSION`"
    )


def model_files_problem(files: Path) -> str | None:
    """What is wrong with a downloaded model folder, or None when it is whole."""
    import zipfile

    networks = list(files.glob("artifacts/*.keras"))
    if not (files / "MLmodel").is_file() or not networks:
        return "its files are incomplete (MLmodel or the network is missing)"
    try:  # a .keras file is a zip archive: its checksums say whether it is whole
        with zipfile.ZipFile(networks[0]) as archive:
            whole = archive.testzip() is None
    except zipfile.BadZipFile:
        whole = False
    return None if whole else f"its network file {networks[0].name} is corrupt"


def login_hint(uri: str) -> str:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if not user or not os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        return f"{uri} asks for a login: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    return (
        f"{uri} refused the login of user '{user}': check MLFLOW_TRACKING_USERNAME "
        "and MLFLOW_TRACKING_PASSWORD"
    )


def check_server(uri: str) -> None:
    """One quick authenticated request to a tracking server; StoreError if it fails."""
    request = urllib.request.Request(
        f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1"
    )
    user, password = (os.environ.get(f"MLFLOW_TRACKING_{k}") for k in ("USERNAME", "PASSWORD"))
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        urllib.request.urlopen(request, timeout=CHECK_TIMEOUT).close()
    except urllib.error.HTTPError as error:
        if error.code == 401:
            raise StoreError(login_hint(uri)) from None
        raise StoreError(
            f"{uri} answered {error.code} {error.reason} to an MLflow request: "
            "is MLFLOW_TRACKING_URI the address of an MLflow tracking server?"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise StoreError(
            f"cannot reach the tracking server {uri} ({reason}): check that it is running "
            "and that MLFLOW_TRACKING_URI is right"
        ) from None


def explain(error: Exception) -> str | None:
    """One line for a login, permission or connection error from MLflow, else None."""
    from mlflow.exceptions import MlflowException

    if not isinstance(error, MlflowException):
        return None
    uri = tracking_uri()
    if error.error_code == "UNAUTHENTICATED":
        return login_hint(uri)
    if error.error_code == "PERMISSION_DENIED":
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "anonymous")
        return (
            f"user '{user}' may not do this on {uri} (permission denied): ask the server's "
            "admin for EDIT permission (README, Team set-up)"
        )
    if "Max retries exceeded" in str(error):
        return f"lost the tracking server {uri}: check that it is running, then run again"
    return None


class Stopped(BaseException):
    """SIGTERM arrived. A BaseException, as KeyboardInterrupt is, so that no `except
    Exception` swallows it and every `with` block on the way out closes what it opened."""


def raise_stopped(signum: int, frame) -> None:
    raise Stopped("SIGTERM")


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


def stop_reason(error: BaseException) -> str:
    return "Ctrl+C" if isinstance(error, KeyboardInterrupt) else "SIGTERM"


@contextlib.contextmanager
def errors_in_one_line() -> Iterator[None]:
    """Exit with one line, not a traceback, when the store cannot be used, a file cannot
    be written, or the user stops the command (Ctrl+C, SIGTERM: exit 130 or 143).

    Wrap a command's main() in it; light to import, so `--help` stays fast."""
    signal.signal(signal.SIGTERM, raise_stopped)
    try:
        yield
    except (KeyboardInterrupt, Stopped) as stop:
        print(
            f"stopped by {stop_reason(stop)}: files written so far are whole, and an MLflow "
            "run in progress is marked KILLED; run the command again to go on (training "
            "resumes after its last whole epoch)",
            file=sys.stderr,
        )
        raise SystemExit(130 if isinstance(stop, KeyboardInterrupt) else 143) from None
    except StoreError as error:
        raise SystemExit(f"error: {error}") from None
    except OSError as error:
        if not error.filename:  # not about a file: a bug, or the network
            raise
        raise SystemExit(f"error: {error.filename}: {error.strerror}") from None
    except Exception as error:
        message = explain(error)
        if message is None:
            raise
        raise SystemExit(f"error: {message}") from None
