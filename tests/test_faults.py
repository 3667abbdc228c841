"""Faults in the pipeline, done for real: signals sent to a real `train` process at a chosen
epoch (found in its own output), a model file that cannot be written, a write that fails
half-way, a champion whose files are gone. Each leaves the MLflow run marked, the files
whole, and one line for the user; a stopped training run resumes where it stopped.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from core.paths import written_whole

from helpers import MODEL_NAME, REPO, free_port, run_stage, stage_env, store, write_params

pytestmark = pytest.mark.slow  # trains models or starts services: `make test` only

EPOCHS = 4
TINY = {"val_size": 500, "train_subset": 2000}  # MNIST images prepared, per split


@pytest.fixture(scope="module")
def folder(mirror, tmp_path_factory) -> Path:
    """MNIST with 2,000 training images prepared, and the files of an earlier training
    that a stopped run must leave as they were."""
    folder = tmp_path_factory.mktemp("faults")
    shutil.copytree(mirror, folder / "data" / "raw")
    (folder / "models").mkdir()
    (folder / "models" / "model.keras").write_bytes(b"the model of an earlier run")
    (folder / "models" / "mlflow_run.json").write_text('{"run_id": "earlier"}\n')
    use_params(folder)
    for stage in ("pipeline.preprocess", "pipeline.pieces"):
        result = run_stage(stage, folder)
        assert result.returncode == 0, result.stderr
    return folder


def use_params(folder: Path, **train) -> None:
    """Train EPOCHS epochs at the tutorial's constant rate, with train's changes."""
    constant = {"epochs": EPOCHS, "learning_rate": 1.0, "warmup_epochs": 0, "augment": False}
    write_params(folder, preprocess=TINY, pieces={"numbers": 20}, train=constant | train)


def train(folder: Path) -> subprocess.CompletedProcess:
    result = run_stage("pipeline.train", folder, MLFLOW_TRACKING_URI=store(folder))
    assert result.returncode == 0, result.stderr
    return result


def last_run(folder: Path):
    mlflow.set_tracking_uri(store(folder))
    [run] = mlflow.search_runs(search_all_experiments=True, max_results=1, output_format="list")
    return run


def val_accuracy(folder: Path, run_id: str) -> list[tuple[int, float]]:
    """A run's validation accuracy as logged, (epoch, accuracy) by epoch."""
    history = mlflow.MlflowClient(store(folder)).get_metric_history(run_id, "val_accuracy")
    return sorted((metric.step, metric.value) for metric in history)


def files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((folder / "models").iterdir())}


def train_until_epoch(folder: Path, epoch: int) -> subprocess.Popen:
    """`python -m pipeline.train`, returned once it has started the given epoch."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.train"],
        cwd=folder,
        env=stage_env(MLFLOW_TRACKING_URI=store(folder), PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a shell that started us in the background may have left
        # SIGINT ignored, and children inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    for line in process.stdout:  # Keras prints "Epoch 2/4" as the epoch starts
        if line.startswith(f"Epoch {epoch}/"):
            return process
    pytest.fail(f"train ended before epoch {epoch}: {process.stderr.read()[-2000:]}")


@pytest.mark.parametrize(
    "sent, exit_code, reason",
    [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl+C")],
    ids=["SIGTERM", "Ctrl+C"],
)
def test_a_stopped_training_run_is_marked_killed_and_keeps_the_old_model(
    folder, sent, exit_code, reason
):
    use_params(folder)
    before = files(folder)
    process = train_until_epoch(folder, 2)
    process.send_signal(sent)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_code, stderr[-2000:]
    [message] = [line for line in stderr.splitlines() if line.startswith("stopped by")]
    assert message.startswith(f"stopped by {reason}:") and "Traceback" not in stderr
    run = last_run(folder)
    assert run.info.status == "KILLED"
    assert run.data.tags["stopped_because"] == reason
    assert run.data.metrics["val_accuracy"] > 0  # the epochs before the signal are kept
    assert files(folder) == before  # the old model and run id, whole, and nothing else
    assert (folder / "train-backup" / "epoch-1.keras").is_file()  # kept to resume from


def test_a_killed_training_run_resumes_and_ends_as_if_it_never_stopped(folder):
    # Warm-up, distortions and dropout all draw on the seed: the hard case for resuming.
    use_params(folder, warmup_epochs=1, augment=True)
    train(folder)
    expected = val_accuracy(folder, last_run(folder).info.run_id)
    history = (folder / "reports" / "training_history.csv").read_text()

    process = train_until_epoch(folder, 3)
    process.kill()  # SIGKILL, as a CI job or the kernel kills: nothing of ours runs
    process.wait()
    killed = last_run(folder).info.run_id
    assert val_accuracy(folder, killed) == expected[:2]

    resumed = train(folder)
    assert f"resuming MLflow run {killed} after epoch 2" in resumed.stdout
    assert "Epoch 1/" not in resumed.stdout and f"Epoch 3/{EPOCHS}" in resumed.stdout
    run = last_run(folder)
    assert (run.info.run_id, run.info.status) == (killed, "FINISHED")
    assert run.data.tags["resumed_after_epoch"] == "2"
    assert val_accuracy(folder, killed) == expected  # epoch by epoch, to the last digit
    assert (folder / "reports" / "training_history.csv").read_text() == history
    assert not (folder / "train-backup").exists()  # finished: nothing left to resume


def test_a_backup_made_with_other_parameters_is_thrown_away(tmp_path, monkeypatch):
    import keras

    from pipeline import resume

    monkeypatch.setattr(resume, "BACKUP_DIR", tmp_path / "train-backup")
    fingerprint = resume.fingerprint({"train.epochs": 4, "data.train_sha256": "abc"})
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adadelta", loss="mse")
    for changed in ({"train.epochs": 5, "data.train_sha256": "abc"}, {"train.epochs": 4}):
        resume.save(model, resume.Backup(fingerprint, "run-1", epochs=1, history={}, seconds=9))
        assert resume.load(fingerprint).run_id == "run-1"
        assert resume.load(resume.fingerprint(changed)) is None
        assert not (tmp_path / "train-backup").exists()


def test_a_model_that_cannot_be_written_fails_the_run_in_one_line(folder):
    before = files(folder)
    use_params(folder, epochs=1)
    blocked = folder / "models" / "model.keras"
    blocked.rename(folder / "kept.keras")
    blocked.mkdir()  # a folder where the file goes: the rename onto it fails
    try:
        result = run_stage("pipeline.train", folder, MLFLOW_TRACKING_URI=store(folder))
    finally:
        blocked.rmdir()
        (folder / "kept.keras").rename(blocked)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: models/model.keras: ")
    assert "Traceback" not in result.stderr
    run = last_run(folder)
    assert run.info.status == "FAILED"
    assert "models/model.keras" in run.data.tags["stopped_because"]
    assert files(folder) == before  # no partial file left beside it


def test_a_file_is_replaced_only_once_written_whole(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"old": 1}')
    with pytest.raises(RuntimeError), written_whole(path) as partial:
        partial.write_text('{"new": ')  # a crash half-way through
        raise RuntimeError("crash")
    assert path.read_text() == '{"old": 1}' and os.listdir(tmp_path) == ["metrics.json"]
    with written_whole(path) as partial:
        partial.write_text('{"new": 2}')
    assert path.read_text() == '{"new": 2}' and os.listdir(tmp_path) == ["metrics.json"]


@pytest.fixture(scope="module")
def broken(work, tmp_path_factory) -> Path:
    """A store of its own holding the network of the tests' champion three times:
    version 1 (champion) and 2 whole, version 3 with its network file cut in half."""
    from core.packaging import model_arguments

    folder = tmp_path_factory.mktemp("broken")
    mlflow.set_tracking_uri(store(work))
    keras_file = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/1"))
    keras_file = keras_file / "artifacts" / "model.keras"
    mlflow.set_tracking_uri(store(folder))
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("mnist", (folder / "mlruns").as_uri())
    )
    for _ in range(3):
        with mlflow.start_run():
            mlflow.pyfunc.log_model(
                name="model", registered_model_name=MODEL_NAME, **model_arguments(keras_file)
            )
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    network = model_files(folder, "3") / "artifacts" / "model.keras"
    network.write_bytes(network.read_bytes()[: network.stat().st_size // 2])
    shutil.copy(REPO / "params.yaml", folder / "params.yaml")
    return folder


def model_files(folder: Path, version: str) -> Path:
    """Where a version's files are on disk."""
    client = mlflow.MlflowClient(store(folder))
    source = client.get_model_version(MODEL_NAME, version).source  # models:/<model id>
    model = client.get_logged_model(source.removeprefix("models:/"))
    return Path(model.artifact_location.removeprefix("file://"))


def command(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=folder,
        env=stage_env(MLFLOW_TRACKING_URI=store(folder)),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_promote_refuses_a_version_whose_model_cannot_be_loaded(broken):
    result = command(broken, "-m", "pipeline.promote", "3", "--force")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: refusing to promote: {MODEL_NAME} version 3 cannot be loaded: its network "
        "file model.keras is corrupt; make another version the champion with "
        "`python -m pipeline.promote VERSION`"
    )
    client = mlflow.MlflowClient(store(broken))
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "1"


def test_a_champion_whose_files_are_gone_is_named_by_every_client(broken, monkeypatch):
    from core.errors import ModelMissing
    from gui.readers import LocalModel

    shutil.rmtree(model_files(broken, "1"))  # someone deleted mlruns/...
    expected = f"{MODEL_NAME}@champion (version 1) cannot be loaded: its files are incomplete"
    served = command(broken, "-m", "serving", "--port", str(free_port()))
    assert served.returncode == 1 and "Traceback" not in served.stderr
    last_line = served.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"error: {expected}")
    assert last_line.endswith("`python -m pipeline.promote VERSION`")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store(broken))
    with pytest.raises(ModelMissing, match=re.escape(expected)):
        LocalModel(f"models:/{MODEL_NAME}@champion").load()  # the app's status line
    # The fix it names works: another version becomes the champion.
    assert command(broken, "-m", "pipeline.promote", "2", "--force").returncode == 0
