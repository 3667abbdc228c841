import os
import subprocess
import sys
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
