"""The one error rule of every command (core/errors.py), and commands that follow it."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from core.errors import UserError, command
from core.params import ParamsError

from helpers import REPO, stage_env


@pytest.fixture(autouse=True)
def sigterm_handler_kept():
    """command() takes SIGTERM over, as a command should; give pytest its own back."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def fails(error: BaseException):
    def main() -> None:
        raise error

    return main


def test_a_user_error_is_one_line_and_exit_1():
    with pytest.raises(SystemExit) as stop:
        command(fails(ParamsError("train.epochs = 0 is invalid")))
    assert stop.value.code == "error: train.epochs = 0 is invalid"  # printed, exit 1


def test_a_file_that_cannot_be_written_is_one_line():
    with pytest.raises(SystemExit) as stop:
        command(fails(PermissionError(13, "Permission denied", "models/model.keras")))
    assert stop.value.code == "error: models/model.keras: Permission denied"


def test_a_bug_keeps_its_traceback():
    with pytest.raises(KeyError):
        command(fails(KeyError("keras_model")))
    with pytest.raises(OSError):  # an OSError about no file is not the user's to fix
        command(fails(ConnectionResetError(104, "Connection reset by peer")))


def test_ctrl_c_exits_130(capsys):
    with pytest.raises(SystemExit) as stop:
        command(fails(KeyboardInterrupt()), left_whole="nothing was written")
    assert stop.value.code == 130
    assert capsys.readouterr().err == "stopped by Ctrl+C: nothing was written\n"


def test_every_library_error_is_a_user_error():
    from core.feedback import FeedbackError
    from core.store import StoreError
    from pipeline.fetch import FetchError
    from pipeline.preprocess import IdxError
    from pipeline.promote import PromotionError
    from serving.client import EndpointError

    for error in (FeedbackError, StoreError, FetchError, IdxError, PromotionError, EndpointError):
        assert issubclass(error, UserError)


@pytest.mark.parametrize(
    "module", ["pipeline.promote", "pipeline.feedback", "serving", "serving.client", "gui"]
)
def test_bad_usage_exits_2(module):
    result = subprocess.run(
        [sys.executable, "-m", module, "picture.png", "--no-such-option"],
        cwd=REPO,
        env=stage_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ")
    assert "Traceback" not in result.stderr


def test_make_test_names_the_system_packages_it_lacks():
    """Not root, and no Xvfb or xdotool on PATH: one line naming the apt-get install."""
    with tempfile.TemporaryDirectory() as folder:  # not tmp_path: another user must enter it
        bin_dir = Path(folder)
        bin_dir.chmod(0o755)
        (bin_dir / "id").symlink_to(shutil.which("id"))
        command = ["/bin/bash", str(REPO / "tests" / "system-packages.sh")]
        if os.geteuid() == 0:  # as CI runs: as someone else, who may not install
            command = [shutil.which("runuser"), "-u", "nobody", "--", *command]
        result = subprocess.run(
            command,
            env={"PATH": str(bin_dir), "PYTHON": sys.executable},
            capture_output=True,
            text=True,
        )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("make test needs system packages: sudo apt-get install xvfb xdotool")


def promote_against(url: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.promote"],
        env=stage_env(MLFLOW_TRACKING_URI=url, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, time.monotonic() - started


def test_a_server_that_takes_the_connection_but_never_answers_is_waited_for_then_named():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result, seconds = promote_against(url, DIGITS_SERVER_WAIT="6")
    assert result.returncode == 1
    said = result.stderr.strip().splitlines()
    assert said == [
        f"waiting for the tracking server {url}: connected, but no answer yet (up to 6 s, "
        "DIGITS_SERVER_WAIT)",
        f"error: the tracking server {url} took the connection but did not answer in 6 s: "
        "it may be overloaded; try again, or wait longer with DIGITS_SERVER_WAIT",
    ]
    assert seconds >= 6


def test_a_server_that_refuses_the_connection_is_one_line_at_once():
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]  # free now, and nothing listens on it
    result, seconds = promote_against(f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: cannot reach the tracking server http://127.0.0.1:{port} (Connection "
        "refused): check that it is running and that MLFLOW_TRACKING_URI is right"
    )
    assert seconds < 30  # no waiting: the process start is most of it


@pytest.mark.parametrize(
    "args, said",
    [
        (
            ["--database", "postgresql://mlflow:hunter2@127.0.0.1/mlflow"],
            "--database holds a password, which every user of this machine would see (ps): "
            "give it in PGPASSWORD or a .pgpass file (PGPASSFILE) instead",
        ),
        (
            ["--database", "postgresql://mlflow@127.0.0.1/mlflow?password=hunter2"],
            "--database holds a password, which every user of this machine would see (ps): "
            "give it in PGPASSWORD or a .pgpass file (PGPASSFILE) instead",
        ),
        (
            ["--database", "postgresql://mlflow@127.0.0.1/mlflow", "--tls-cert", "cert.pem"],
            "give both --tls-cert and --tls-key, or neither",
        ),
        (
            ["--database", "postgresql://mlflow@127.0.0.1/mlflow", "--tls-cert", "cert.pem",
             "--tls-key", "key.pem"],
            "--tls-cert cert.pem: no such file",
        ),
    ],
)  # fmt: skip
def test_the_team_server_refuses_a_password_in_sight_or_half_a_certificate(args, said, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "team.server", *args, "--home", str(tmp_path / "home")],
        cwd=tmp_path,
        env=stage_env(),
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stderr) == (1, f"error: {said}\n")
    assert not (tmp_path / "home").exists()  # nothing started, nothing written
