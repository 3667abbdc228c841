"""The team's server under real faults, on loopback: frozen just as training starts (a
slow server is not a dead one), restarted during a training run, and its PostgreSQL
restarted during a training run. Each training run must end FINISHED with every epoch's
metrics logged once.

A cluster and a server of their own: the faults must not disturb test_team.py's.
"""

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import mlflow
import pytest
from test_team import Team

from team import local

from helpers import project_copy, sh, stage_env

pytestmark = pytest.mark.slow  # starts services and trains: `make test` only

EPOCHS = 4
TINY = {
    "preprocess": {"val_size": 200, "train_subset": 3000},
    "pieces": {"numbers": 20},
    "train": {"epochs": EPOCHS, "learning_rate": 1.0, "warmup_epochs": 0, "augment": False},
}
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
# Seconds a restarted part stays away before it starts again: as long as restarting the
# MLflow server takes on a busy machine (10-35 s), so that the next epochs end while it is
# away. Training's retries (core/store.py) last about a minute.
AWAY = 20


@pytest.fixture(scope="module")
def team(tmp_path_factory) -> Iterator[tuple[local.Cluster, local.TrackingServer]]:
    home = tmp_path_factory.mktemp("faulty-server")
    with local.cluster() as database, local.tracking_server(database, home) as server:
        yield database, server


@pytest.fixture(scope="module")
def repo(team, tmp_path_factory, mirror):
    """A clone with the stages before train run (they do not use the server)."""
    repo = project_copy(tmp_path_factory.mktemp("faulty-repo"), **TINY)
    sh("dvc", "repro", "pieces", cwd=repo, MNIST_MIRROR=str(mirror))
    return repo


def login(server: local.TrackingServer) -> dict[str, str]:
    """The admin's client settings (test_team.Team's, for this module's server)."""
    return Team(server.url, server.home, server.cluster).login()


def start_training(repo, server, tmp_path) -> tuple[subprocess.Popen, object]:
    output = open(tmp_path / "train.log", "w")  # noqa: SIM115 - closed by finish_training
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.train"],
        cwd=repo,
        env=stage_env(**login(server)),
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, output


def finish_training(process: subprocess.Popen, output, tmp_path) -> str:
    try:
        process.wait(timeout=600)
    finally:
        process.kill()
        output.close()
    printed = (tmp_path / "train.log").read_text()
    assert process.returncode == 0, printed
    return printed


@pytest.fixture
def tracking(team, monkeypatch) -> mlflow.MlflowClient:
    """The admin's client of the server, in this process."""
    _, server = team
    for name, value in login(server).items():
        monkeypatch.setenv(name, value)
    return mlflow.MlflowClient(tracking_uri=server.url)


def latest_run(tracking: mlflow.MlflowClient):
    experiments = [e.experiment_id for e in tracking.search_experiments()]
    runs = tracking.search_runs(experiments, order_by=["start_time DESC"], max_results=1)
    return runs[0] if runs else None


def wait_for_an_epoch(tracking, started: float, process: subprocess.Popen) -> None:
    """Until the run this training started has logged its first epoch; the training must
    still be going on then, or the fault would not be met during a run."""
    while True:
        assert process.poll() is None, "training ended before its first epoch was seen"
        run = latest_run(tracking)
        if run and run.info.start_time / 1000 >= started and "val_loss" in run.data.metrics:
            assert process.poll() is None
            return
        time.sleep(0.2)


def assert_every_epoch_logged_once(tracking, started: float) -> None:
    run = latest_run(tracking)
    assert run.info.start_time / 1000 >= started and run.info.status == "FINISHED"
    for metric in EPOCH_METRICS:
        steps = [m.step for m in tracking.get_metric_history(run.info.run_id, metric)]
        assert steps == list(range(EPOCHS)), (metric, steps)


def test_training_waits_for_a_frozen_server_and_goes_on(team, repo, tracking, tmp_path):
    _, server = team
    started = time.time()
    server.signal(signal.SIGSTOP)  # it takes connections, and answers nothing
    frozen = time.monotonic()
    try:
        process, output = start_training(repo, server, tmp_path)
        while "waiting for the tracking server" not in (tmp_path / "train.log").read_text():
            assert process.poll() is None, (tmp_path / "train.log").read_text()
            time.sleep(0.2)
        time.sleep(max(0.0, 8 - (time.monotonic() - frozen)))
    finally:
        server.signal(signal.SIGCONT)
    printed = finish_training(process, output, tmp_path)
    assert printed.count("waiting for the tracking server") == 1  # said once
    assert_every_epoch_logged_once(tracking, started)


@pytest.mark.parametrize("part", ["the MLflow server", "PostgreSQL"])
def test_training_outlasts_a_restart(team, repo, tracking, tmp_path, part):
    database, server = team
    started = time.time()
    process, output = start_training(repo, server, tmp_path)
    wait_for_an_epoch(tracking, started, process)
    # Stopping PostgreSQL cuts every connection of the server, as a crash would.
    (server if part == "the MLflow server" else database).restart(away=AWAY)
    finish_training(process, output, tmp_path)
    assert_every_epoch_logged_once(tracking, started)
