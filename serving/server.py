"""How `mlflow models serve` is started for one model: the command both endpoints run.

`python -m serving` runs one such server; `python -m serving.production` runs one per
model version behind nginx. The server uses this virtual environment (`--env-manager
local`) and the tracking store of MLFLOW_TRACKING_URI, or the local one.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path


def start(model_uri: str, host: str, port: int, workers: int, **popen) -> subprocess.Popen:
    """Start the server; `popen` goes to subprocess.Popen (output, session)."""
    from core.store import tracking_uri

    bin_dir = Path(sys.executable).parent  # uvicorn must be on PATH for mlflow
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=tracking_uri(),
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    command = [str(bin_dir / "mlflow"), "models", "serve", "--model-uri", model_uri]
    command += ["--env-manager", "local", "--host", host, "--port", str(port)]
    command += ["--workers", str(workers)]
    return subprocess.Popen(command, env=env, **popen)


def free_port() -> int:
    """A TCP port that nothing on 127.0.0.1 listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
