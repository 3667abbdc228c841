import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def mirror() -> Path:
    return mnist_mirror()


# Three small models, good to poor, as (training images, epochs). The good one (about 97%)
# is the network that reads the written numbers of test_normalize and test_gui.
MODELS = [(12000, 3), (1000, 2), (200, 1)]


@pytest.fixture(scope="session")
def work(tmp_path_factory, mirror) -> Path:
    """A work folder with MNIST fetched, whose store (mlflow.db) holds the three models:
    version 1 becomes champion, 2 challenger, 3 gets no alias (promote.min_accuracy 0.5)."""
    work = tmp_path_factory.mktemp("work")
    store = f"sqlite:///{work / 'mlflow.db'}"
    for subset, epochs in MODELS:
        write_params(
            work,
            preprocess={"val_size": 500, "train_subset": subset},
            # Without distortions: they pay off over many epochs, not in these few.
            train={"epochs": epochs, "augment": False},
            promote={"min_accuracy": 0.5},
        )
        for stage in ("fetch", "preprocess", "train", "evaluate", "register"):
            result = run_stage(
                f"pipeline.{stage}", work, MNIST_MIRROR=str(mirror), MLFLOW_TRACKING_URI=store
            )
            assert result.returncode == 0, result.stderr
    return work


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(work: Path, *args: str) -> Iterator[str]:
    """`python -m serving` on a free loopback port, with the work folder's store."""
    port = free_port()
    log_path = work / f"serving-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving", "--port", str(port), *args],
            cwd=work,
            env=stage_env(MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that the whole process group can be stopped
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while f"at {url}/invocations" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the endpoint did not start"
            time.sleep(0.5)
        try:
            yield url
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


@pytest.fixture(scope="session")
def classify(work):
    """The network of the tests' champion (version 1), as the registered model calls it:
    a batch of 28x28 uint8 digits in, probabilities out."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/mnist-cnn/1")
    reader = model.unwrap_python_model()
    return lambda pixels: reader.classify(pixels).numpy()
