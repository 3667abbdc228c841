"""Every benchmark still runs: each script's --help, and its quick mode on the session's
trained models (the numbers it prints are for docs/benchmarks.md, not checked here)."""

import subprocess
import sys

import pytest

from helpers import MODEL_NAME, REPO, stage_env, store

pytestmark = pytest.mark.slow  # trains models or starts services: `make test` only

VERSION = f"models:/{MODEL_NAME}/1"
QUICK = {
    "feedback.py": ["--quick"],
    "gui.py": ["--repeat", "2", "--model-uri", VERSION],
    "load.py": ["--quick"],
    "reading.py": ["--count", "2", "--model-uri", VERSION],
    "serving.py": ["--requests", "5", "--model-uri", VERSION],
    "tracking.py": ["--runs", "5", "--versions", "2", "--mixed", "2"],
    "training.py": ["--quick"],
}
HELPERS = {"endpoints.py", "identity_model.py", "machine.py", "mixed.py"}  # imported, not run


def test_every_benchmark_has_a_quick_mode():
    scripts = {path.name for path in (REPO / "bench").glob("*.py")} - HELPERS
    assert scripts == set(QUICK)


@pytest.mark.parametrize("script", sorted(QUICK))
def test_a_benchmark_runs_in_its_quick_mode(script, work):
    bench = [sys.executable, str(REPO / "bench" / script)]
    env = stage_env(MLFLOW_TRACKING_URI=store(work))
    helped = subprocess.run([*bench, "--help"], cwd=work, env=env, capture_output=True, text=True)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: "), helped.stderr
    result = subprocess.run(
        [*bench, *QUICK[script]], cwd=work, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "| --- |" in result.stdout  # the table it prints
