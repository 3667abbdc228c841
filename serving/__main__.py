"""Serve the registered model over HTTP with `mlflow models serve`.

    python -m serving                                   # models:/mnist-cnn@champion, port 5001
    python -m serving --model-uri models:/mnist-cnn/3 --port 5002

Prints the URL once the endpoint answers /ping; Ctrl+C stops it.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.params import load_params


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"error: mlflow models serve exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"error: the endpoint did not answer {url}/ping within {timeout:.0f} s")


def main() -> None:
    name = load_params()["mlflow"]["model_name"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default=f"models:/{name}@champion")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args()

    from pipeline import tracking

    tracking.use_store()
    try:
        tracking.describe_model(args.model_uri)  # fail here, clearly, not inside MLflow
    except LookupError as error:
        raise SystemExit(f"error: {error}") from None
    bin_dir = Path(sys.executable).parent  # uvicorn must be on PATH for mlflow
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=tracking.tracking_uri(),
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    command = [
        str(bin_dir / "mlflow"),
        "models",
        "serve",
        "--model-uri",
        args.model_uri,
        "--env-manager",
        "local",
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    # Stop the server with us, on Ctrl+C as on `kill`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    process = subprocess.Popen(command, env=env)
    url = f"http://{args.host}:{args.port}"
    try:
        wait_until_ready(url, process)
        print(f"serving {args.model_uri} at {url}/invocations", flush=True)
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
