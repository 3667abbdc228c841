"""The endpoints, models and pictures the serving benchmarks share.

`serve` and `production` start `python -m serving` and `python -m serving.production`
on a free loopback port, and stop them afterwards; `bench_store` registers the model and
a model that does nothing in a store of the benchmark's own, and `keras_model` saves the
bare network; `server_memory` is what a server and the processes it started hold.
"""

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from serving.server import free_port

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent


def five_digit_picture(digits: np.ndarray) -> np.ndarray:
    """600x200, dark ink on white, five MNIST digits scaled up 4x, unevenly spaced."""
    canvas = Image.new("L", (600, 200), 255)
    for left, digit in zip((10, 120, 250, 350, 480), digits, strict=True):
        canvas.paste(Image.fromarray(255 - digit).resize((112, 112), Image.BILINEAR), (left, 44))
    return np.asarray(canvas)


@contextlib.contextmanager
def serve(store: str, model_uri: str, workers: int = 1) -> Iterator[tuple[str, int]]:
    """`python -m serving` on a free port, once it answers: its URL and process id."""
    port = free_port()
    command = ["-m", "serving", "--model-uri", model_uri, "--port", str(port)]
    with started(store, [*command, "--workers", str(workers)], port) as (url, pid):
        yield url, pid


@contextlib.contextmanager
def production(
    store: str, alias: str, workers: int, home: Path, *extra: str
) -> Iterator[tuple[str, int]]:
    """`python -m serving.production` on the alias, once it answers: its URL and pid."""
    port = free_port()
    command = ["-m", "serving.production", "--alias", alias, "--port", str(port)]
    command += ["--workers", str(workers), "--home", str(home), *extra]
    with started(store, command, port) as (url, pid):
        yield url, pid


@contextlib.contextmanager
def started(store: str, arguments: list[str], port: int) -> Iterator[tuple[str, int]]:
    from serving.client import wait_until_ready

    process = subprocess.Popen(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=dict(os.environ, MLFLOW_TRACKING_URI=store),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, timeout=300, running=lambda: process.poll() is None)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)  # it stops what it started
        process.wait()


def server_memory(pid: int) -> int:
    """Resident bytes of a server: the process and every process it started."""
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def bench_store(folder: Path, keras_path: Path) -> str:
    """A store of its own, with three versions of the model name of params.yaml: the
    pictures-to-digits model of this working tree on keras_path (aliases `champion`
    and, as version 2, `twin`), and a pyfunc that answers its input with the same input
    signature (version 3, alias `identity`): what the serving stack costs by itself."""
    import mlflow

    from core.packaging import SIGNATURE, model_arguments
    from core.registry import model_name

    store = f"sqlite:///{folder / 'bench.db'}"
    mlflow.set_tracking_uri(store)
    name = model_name()
    identity = {
        "python_model": str(BENCH / "identity_model.py"),
        # The network it never uses: the endpoints refuse a version without one, as broken.
        "artifacts": {"keras_model": str(keras_path)},
        "signature": mlflow.models.ModelSignature(inputs=SIGNATURE.inputs),
        "pip_requirements": ["mlflow"],
    }
    for arguments in (model_arguments(keras_path), model_arguments(keras_path), identity):
        with mlflow.start_run():
            mlflow.pyfunc.log_model(name="model", registered_model_name=name, **arguments)
    client = mlflow.MlflowClient()
    for alias, version in (("champion", "1"), ("twin", "2"), ("identity", "3")):
        client.set_registered_model_alias(name, alias, version)
    return store


def keras_model(folder: Path, keras_path: Path) -> str:
    """The bare trained network in MLflow's Keras flavour: raw pixels in."""
    import keras
    import mlflow

    path = str(folder / "keras")
    mlflow.keras.save_model(
        keras.models.load_model(keras_path), path, pip_requirements=["tensorflow", "keras"]
    )
    return str(path)
