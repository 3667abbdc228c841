"""The endpoints and pictures the serving benchmarks share.

`serve` starts `python -m serving` on a free loopback port and stops its whole process
group afterwards; `identity_model` and `keras_model` save the two baselines the
pictures-to-digits model is compared with; `server_memory` is what a server holds.
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

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent


def five_digit_picture(digits: np.ndarray) -> np.ndarray:
    """600x200, dark ink on white, five MNIST digits scaled up 4x, unevenly spaced."""
    canvas = Image.new("L", (600, 200), 255)
    for left, digit in zip((10, 120, 250, 350, 480), digits, strict=True):
        canvas.paste(Image.fromarray(255 - digit).resize((112, 112), Image.BILINEAR), (left, 44))
    return np.asarray(canvas)


@contextlib.contextmanager
def serve(model_uri: str, workers: int = 1) -> Iterator[tuple[str, int]]:
    """`python -m serving` on a free port, once it answers: its URL and process id."""
    from serving.contract import wait_until_ready
    from serving.server import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "--model-uri", model_uri, "--port", str(port)]
        + ["--workers", str(workers)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, stopped as one below
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, running=lambda: process.poll() is None)
        yield url, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()


def server_memory(pid: int) -> int:
    """Resident bytes of a server: the process and every process it started."""
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def identity_model(folder: Path) -> str:
    """A pyfunc that answers its input, with the model's input signature: what the
    serving stack costs by itself."""
    import mlflow

    from serving.package import SIGNATURE

    path = folder / "identity"
    mlflow.pyfunc.save_model(
        path,
        python_model=str(BENCH / "identity_model.py"),
        signature=mlflow.models.ModelSignature(inputs=SIGNATURE.inputs),
        input_example=None,
        pip_requirements=["mlflow"],
    )
    return str(path)


def keras_model(folder: Path, keras_path: Path) -> str:
    """The bare trained network in MLflow's Keras flavour: raw pixels in."""
    import keras
    import mlflow

    path = str(folder / "keras")
    mlflow.keras.save_model(
        keras.models.load_model(keras_path), path, pip_requirements=["tensorflow", "keras"]
    )
    return str(path)
