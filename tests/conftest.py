"""Fixtures shared by the test modules: MNIST, a store with three trained models, a screen.

Two tiers: `make check` runs the fast one (`-m "not slow"`: nothing trained beyond
seconds, no service started), `make test` runs both. A test is slow when it needs the
trained models of `work`, or when its module is marked slow (it starts services).
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import MODEL_NAME, mnist_mirror, run_stage, store, write_params


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
    for subset, epochs in MODELS:
        write_params(
            work,
            preprocess={"val_size": 500, "train_subset": subset},
            pieces={"numbers": subset // 60},  # 200 numbers for the good model
            # The tutorial's constant-rate start, without warm-up or distortions: those pay
            # off over many epochs, not in these few.
            train={"epochs": epochs, "learning_rate": 1.0, "warmup_epochs": 0, "augment": False},
            promote={"min_accuracy": 0.5},
        )
        for stage in (
            "fetch",
            "preprocess",
            "pieces",
            "train",
            "lines",
            "export",
            "evaluate",
            "register",
        ):
            result = run_stage(
                f"pipeline.{stage}", work, MNIST_MIRROR=str(mirror), MLFLOW_TRACKING_URI=store(work)
            )
            assert result.returncode == 0, result.stderr
    return work


@pytest.fixture(scope="session")
def classify(work):
    """The network of the tests' champion (version 1), as the registered model calls it
    (its ONNX export): a batch of 28x28 uint8 digits in, the digits' probabilities out."""
    import mlflow

    mlflow.set_tracking_uri(store(work))
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    reader = model.unwrap_python_model()
    return reader.classify


@pytest.fixture(scope="session")
def test_digits(mirror):
    """The first 20 digits of MNIST's test set, 28x28 uint8."""
    from pipeline.preprocess import IMAGES_MAGIC, read_idx

    return read_idx(mirror / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, (10_000, 28, 28))[:20]


@pytest.fixture(scope="session")
def display():
    """An Xvfb screen of our own, always: never the screen and pointer of whoever runs
    the tests, whatever DISPLAY says."""
    if not shutil.which("Xvfb") or not shutil.which("xdotool"):
        pytest.fail("the GUI tests need Xvfb and xdotool (Debian: apt-get install xvfb xdotool)")
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=[write],
    )
    os.close(write)
    number = os.read(read, 16).decode().strip()
    before = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{number}"
    yield os.environ["DISPLAY"]
    xvfb.terminate()
    xvfb.wait()
    if before is None:
        del os.environ["DISPLAY"]
    else:
        os.environ["DISPLAY"] = before


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "work" in item.fixturenames:
            item.add_marker(pytest.mark.slow)
