"""What the tests share besides fixtures: the repository, stage runs, endpoints.

Fixtures live in conftest.py; test modules import these helpers from here.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from serving.contract import EndpointError, wait_until_ready

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
MODEL_NAME = PARAMS["mlflow"]["model_name"]


def mnist_mirror() -> Path:
    """The offline copy of MNIST the tests read: $MNIST_MIRROR, else ../shared/mnist."""
    mirror = Path(os.environ.get("MNIST_MIRROR") or REPO.parent / "shared" / "mnist").resolve()
    if not (mirror / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"the MNIST files are needed: set MNIST_MIRROR (looked in {mirror})")
    return mirror


def stage_env(**extra: str) -> dict[str, str]:
    """The environment a stage runs in: this repo's code, no outside tracking server."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_ROOT")}
    # dvc, and the `python` of dvc.yaml's commands, come from the interpreter running the tests.
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(PATH=path, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def run_stage(module: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `python -m module` in cwd as DVC would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=cwd,
        env=stage_env(**env),
        capture_output=True,
        text=True,
    )


def write_params(directory: Path, **overrides: dict) -> dict:
    """Copy the repository's params.yaml into directory, with per-stage overrides."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for stage, values in overrides.items():
        params.setdefault(stage, {}).update(values)
    (directory / "params.yaml").write_text(yaml.safe_dump(params))
    return params


def store(work: Path) -> str:
    """The tracking URI of a work folder's own store."""
    return f"sqlite:///{work / 'mlflow.db'}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Server:
    url: str
    group: int  # its process group: signals sent to it reach mlflow and its workers


@contextlib.contextmanager
def serve(work: Path, *args: str) -> Iterator[Server]:
    """`python -m serving` on a free loopback port, with the work folder's store."""
    port = free_port()
    log_path = work / f"serving-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving", "--port", str(port), *args],
            cwd=work,
            env=stage_env(MLFLOW_TRACKING_URI=store(work)),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that the whole process group can be stopped
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_ready(url, running=lambda: process.poll() is None)
        except EndpointError as error:
            pytest.fail(f"{error}:\n{log_path.read_text()}")
        yield Server(url, process.pid)
    finally:
        os.killpg(process.pid, signal.SIGCONT)  # in case a test left it stopped
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
