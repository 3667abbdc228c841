"""What the tests share besides fixtures: the repository, stage runs, endpoints.

Fixtures live in conftest.py; test modules import these helpers from here.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from serving.client import EndpointError, wait_until_ready
from serving.server import free_port

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
    """The environment a stage runs in: this repo's code, no outside tracking server or
    login unless given in extra."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MLFLOW_TRACKING_") and k != "DVC_ROOT"
    }
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


# The tests' tiny models are read on a part of the test set and of the benchmark: the
# packaged model's reading costs far more than their training.
QUICK_EVALUATE = {"pictures": 2000, "numbers": 25}
QUICK_LINES = {"numbers": 256, "epochs": 1}  # a line reader in seconds, unsure of everything


def write_params(directory: Path, **overrides: dict) -> dict:
    """Copy the repository's params.yaml into directory, with the tests' quick evaluate and
    line reader, and per-stage overrides."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["evaluate"] = dict(QUICK_EVALUATE)
    params["lines"].update(QUICK_LINES)
    for stage, values in overrides.items():
        params.setdefault(stage, {}).update(values)
    (directory / "params.yaml").write_text(yaml.safe_dump(params))
    return params


def sh(*command: str, cwd: Path, **env: str) -> str:
    """Run a command as a stage would (stage_env); its output, or a failed test."""
    result = subprocess.run(command, cwd=cwd, env=stage_env(**env), capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def set_params(repo: Path, **changes: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for stage, values in changes.items():
        params[stage].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))


def project_copy(copy: Path, **params: dict) -> Path:
    """A git repository like a fresh clone of the working tree (tracked and new files,
    without the committed results), with the given parameter changes committed."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file() and not name.startswith(("reports/", "dvc.lock")):
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    set_params(copy, **({"evaluate": QUICK_EVALUATE, "lines": QUICK_LINES} | params))
    sh("git", "init", "-q", cwd=copy)
    commit(copy, "copy")
    return copy


def commit(repo: Path, message: str) -> None:
    sh("git", "add", "-A", cwd=repo)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message, cwd=repo)


def store(work: Path) -> str:
    """The tracking URI of a work folder's own store."""
    return f"sqlite:///{work / 'mlflow.db'}"


@dataclass(frozen=True)
class Server:
    url: str
    group: int  # its process group: signals sent to it reach mlflow and its workers


@contextlib.contextmanager
def serve(work: Path, *args: str, **env: str) -> Iterator[Server]:
    """`python -m serving` on a free loopback port, with the work folder's store unless
    env names another (MLFLOW_TRACKING_URI, and a login)."""
    port = free_port()
    log_path = work / f"serving-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving", "--port", str(port), *args],
            cwd=work,
            env=stage_env(**{"MLFLOW_TRACKING_URI": store(work), **env}),
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


def drawn_corrections(folder: Path, count: int, seed: int = 0) -> None:
    """`count` corrections as the drawing app saves them (pipeline/feedback.py), one per
    drawing: digits 0-9 in turn, drawn with a pen (synthetic/numbers.py) and normalised as
    the registered model normalises them; every third one had been misread."""
    import numpy as np
    from PIL import Image

    from core import feedback
    from digit_reader.contract import encode, png
    from digit_reader.normalize import candidates
    from synthetic.numbers import pen_digit

    rng = np.random.default_rng(seed)
    for i in range(count):
        label = i % 10
        ink = np.pad(pen_digit(str(label), height=120, pen=9, rng=rng), 40)
        drawing = Image.fromarray((255 - ink * 255).astype(np.uint8))  # dark ink on white
        # The candidate covering all of the ink: the whole digit, as the model reads it.
        digit = max(candidates(drawing).digits, key=lambda d: d.width * d.height)
        correction = feedback.Correction(
            label=label,
            read_as=(label + 1) % 10 if i % 3 == 0 else label,
            model_version="1",
            drawing=feedback.new_drawing(png(np.asarray(drawing)), folder),
            box={"x": digit.x, "y": digit.y, "width": digit.width, "height": digit.height},
            pixels=encode(png(digit.pixels)),
            time="2026-11-27T12:00:00+00:00",
        )
        feedback.save(correction, 1, folder)
