"""End to end: `dvc repro` in a copy of this repository, on a few hundred real images."""

import base64
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import psutil
import pytest
import yaml
from PIL import Image

from core import feedback
from core.paths import (
    FEEDBACK_DIR,
    METRICS_PATH,
    MODEL_PATH,
    PIECES_PATH,
    PREPARED_DIR,
    REPORTS_DIR,
    in_clone,
)
from digit_reader.contract import png, read_model
from pipeline.evaluate import digits_read

from helpers import MODEL_NAME, drawn_corrections, project_copy, set_params, sh, stage_env

pytestmark = pytest.mark.slow  # trains models or starts services: `make test` only

TINY = {
    "preprocess": {"val_size": 200, "train_subset": 1000},
    "pieces": {"numbers": 20},
    "train": {"epochs": 2},
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return project_copy(tmp_path_factory.mktemp("repo"), **TINY)


def locked_model_md5(repo: Path) -> str:
    """The md5 that dvc.lock records for the trained model."""
    outs = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train"]["outs"]
    return next(out["md5"] for out in outs if out["path"] == str(in_clone(Path(), MODEL_PATH)))


def example_picture(example) -> bytes:
    """The picture of a model's input example, checked to be a PNG."""
    picture = base64.b64decode(example["image"][0])
    assert Image.open(io.BytesIO(picture)).format == "PNG"
    return picture


def registry(repo: Path, uri: str | None = None) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=uri or f"sqlite:///{repo / 'mlflow.db'}")


def test_dvc_repro_trains_evaluates_and_registers(repo, mirror):
    sh("dvc", "repro", cwd=repo, MNIST_MIRROR=str(mirror))

    metrics = json.loads((in_clone(repo, METRICS_PATH)).read_text())
    assert 0.5 < metrics["test"]["accuracy"] <= 1  # 1,000 images, 2 epochs: far above chance
    # Through the pictures-to-digits model, the first test digits each sent as a PNG: about
    # as the network reads them (a digit in several pieces is now and then read as two).
    import keras

    pictures = metrics["test"]["pictures"]
    test = np.load(in_clone(repo, PREPARED_DIR) / "test.npz")
    network = keras.models.load_model(in_clone(repo, MODEL_PATH))
    read = digits_read(network, test["x"][:pictures]) == test["y"][:pictures]
    assert abs(metrics["test"]["picture_accuracy"] - read.mean()) <= 0.005
    assert set(metrics["numbers"]) == {"canvases", "drawn", "hard", "photo", "touching"}
    assert set(metrics["per_class"]) == {str(d) for d in range(10)}
    for plot in ("confusion.png", "misclassified.png", "training_curves.png"):
        assert (in_clone(repo, REPORTS_DIR) / plot).stat().st_size > 1000

    client = registry(repo)
    [version] = client.search_model_versions(f"name = '{MODEL_NAME}'")
    run = client.get_run(version.run_id)
    # The run logs the parameters that decide the model, all declared in dvc.yaml.
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["train"]["params"]
    sections = set(yaml.safe_load((repo / "params.yaml").read_text()))
    logged = {name.split(".")[0] for name in run.data.params} & sections
    assert logged == {"preprocess", "pieces", "train"} and logged <= set(declared)
    assert run.data.params["train.epochs"] == "2"
    assert run.data.params["preprocess.train_subset"] == "1000"
    assert "data.train_sha256" in run.data.params and "git_commit" in run.data.tags
    assert run.data.metrics["test_accuracy"] == metrics["test"]["accuracy"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [0, 1]
    assert version.tags["test_accuracy"] == str(metrics["test"]["accuracy"])
    # Every set's figure, as evaluate measured it, is on the version for promote to show.
    for name, right in metrics["numbers"].items():
        assert float(version.tags[f"numbers_{name}"]) == right
    assert version.tags["run_id"] == run.info.run_id
    assert version.tags["model_md5"] == locked_model_md5(repo)
    # The line reader's own run, named by the version: its CTC loss per epoch.
    lines_run = client.get_run(version.tags["lines_run_id"])
    assert lines_run.info.status == "FINISHED" and lines_run.info.run_name == "lines"
    assert lines_run.data.params["lines.numbers"] == "256"
    assert [m.step for m in client.get_metric_history(lines_run.info.run_id, "ctc_loss")] == [1]
    assert 0 <= lines_run.data.metrics["held_out_line_accuracy"] <= 1

    # The registered model loads by its registry URI and reads digits from pictures.
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version.version}")
    test = np.load(in_clone(repo, PREPARED_DIR) / "test.npz")
    results = read_model(model, [png(pixels) for pixels in test["x"][:200]])
    right = [r["digits"] == str(label) for r, label in zip(results, test["y"][:200], strict=True)]
    assert np.mean(right) > 0.5
    # It describes itself: what it takes, what it answers, and an example request.
    signature = model.metadata.signature
    assert signature.inputs.input_names() == ["image"]
    assert signature.outputs.input_names() == ["digits", "boxes"]
    example = model.input_example
    assert list(example.columns) == ["image"] and len(example) == 1
    assert read_model(model, [example_picture(example)])[0]["digits"] != ""
    # Below promote.min_accuracy (0.99): registered, but no alias.
    assert version.aliases == []
    # MNIST alone by default; no corrections from the app to measure on.
    assert version.description == "Trained on MNIST only."
    assert metrics["feedback"] == {"accuracy": None, "digits": 0}


def test_second_repro_only_checks_the_registry(repo, mirror):
    started = time.perf_counter()
    out = sh("dvc", "repro", cwd=repo, MNIST_MIRROR=str(mirror))
    seconds = time.perf_counter() - started
    assert re.findall(r"Running stage '(\w+)'", out) == ["register"]
    assert f"this model is already {MODEL_NAME} version 1" in out
    print(f"no-op dvc repro: {seconds:.1f} s")


def test_a_changed_evaluation_reaches_the_registered_version(repo):
    """The model is the same, its evaluation is not (evaluate or the numbers benchmark
    changed): register brings the version's tags and its run's metrics up to date, and
    back again."""
    path = in_clone(repo, METRICS_PATH)
    written = path.read_text()
    metrics = json.loads(written)
    photo = 0.123 if metrics["numbers"]["photo"] != 0.123 else 0.456
    metrics["numbers"] |= {"photo": photo, "smudged": 0.5}  # a figure changed, one more
    try:
        path.write_text(json.dumps(metrics))
        out = sh(sys.executable, "-m", "pipeline.register", cwd=repo)
        assert "brought up to date: numbers_photo, numbers_smudged" in out
        [version] = registry(repo).search_model_versions(f"name = '{MODEL_NAME}'")
        assert version.tags["numbers_photo"] == str(photo)
        assert version.tags["numbers_smudged"] == "0.5"
        assert registry(repo).get_run(version.tags["run_id"]).data.metrics["numbers_photo"] == photo
    finally:
        path.write_text(written)
    sh(sys.executable, "-m", "pipeline.register", cwd=repo)
    [version] = registry(repo).search_model_versions(f"name = '{MODEL_NAME}'")
    assert version.tags["numbers_photo"] == str(json.loads(written)["numbers"]["photo"])
    assert "numbers_smudged" not in version.tags


def test_exp_run_lands_in_the_same_store(repo, mirror):
    sh("dvc", "exp", "run", "-S", "train.epochs=3", cwd=repo, MNIST_MIRROR=str(mirror))
    versions = registry(repo).search_model_versions(f"name = '{MODEL_NAME}'")
    assert len(versions) == 2
    newest = max(versions, key=lambda v: int(v.version))
    assert registry(repo).get_run(newest.run_id).data.params["train.epochs"] == "3"


def test_run_cache_restore_still_registers_the_model(repo, mirror, tmp_path):
    """DVC restores train from its run cache without training: the registry must still agree."""
    fresh_store = f"sqlite:///{tmp_path / 'fresh.db'}"
    set_params(repo, train={"epochs": 2})  # trained before: DVC restores it from the run cache
    out = sh("dvc", "repro", cwd=repo, MNIST_MIRROR=str(mirror), MLFLOW_TRACKING_URI=fresh_store)
    assert "Stage 'train' is cached - skipping run" in out

    [version] = registry(repo, fresh_store).search_model_versions(f"name = '{MODEL_NAME}'")
    assert version.tags["model_md5"] == locked_model_md5(repo)
    run = registry(repo, fresh_store).get_run(version.run_id)
    assert run.data.tags["restored_from_dvc_cache"] == "true"


def train_output(work: Path, tmp_path: Path, terminal: bool) -> str:
    """What `python -m pipeline.train` prints on the work folder's small data (200 images),
    at a terminal (a pseudo-terminal) or into a pipe (a log)."""
    import os
    import pty

    shutil.copytree(in_clone(work, PREPARED_DIR), in_clone(tmp_path, PREPARED_DIR))
    shutil.copy(in_clone(work, PIECES_PATH), in_clone(tmp_path, PIECES_PATH))
    shutil.copy(work / "params.yaml", tmp_path)
    env = stage_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    command = [sys.executable, "-m", "pipeline.train"]
    if not terminal:
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout
    parent, child = pty.openpty()
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=child, stderr=child)
    os.close(child)
    output = b""
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # the terminal closes with the process
            break
        if not chunk:
            break
        output += chunk
    os.close(parent)
    assert process.wait() == 0, output.decode(errors="replace")
    return output.decode(errors="replace")


def test_a_second_repro_stops_at_the_lock_and_the_first_finishes(repo, mirror):
    set_params(repo, train={"epochs": 4})  # not in the run cache: the train stage must run
    env = stage_env(MNIST_MIRROR=str(mirror), PYTHONUNBUFFERED="1")
    first = subprocess.Popen(
        ["dvc", "repro", "--single-item", "train"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in first.stdout:  # wait until it trains: DVC holds its lock then
        if line.startswith("Epoch 1/"):
            break
    # Paused, so that it is still running however long the second takes to start.
    paused = [first.pid] + [child.pid for child in psutil.Process(first.pid).children(True)]
    for pid in paused:
        os.kill(pid, signal.SIGSTOP)
    try:
        second = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True)
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
    rest = first.stdout.read()
    assert first.wait(timeout=300) == 0, rest
    assert second.returncode != 0
    assert "is busy, it is being blocked by" in second.stderr  # DVC's lock on the outputs
    assert "Running stage" not in second.stdout  # it did nothing
    model_md5 = hashlib.md5((in_clone(repo, MODEL_PATH)).read_bytes()).hexdigest()
    assert locked_model_md5(repo) == model_md5  # the first one finished and recorded it


def test_corrections_from_the_app_are_measured_and_learned_from_when_asked(repo, mirror):
    # 50 drawings: 15 held out (30%), 35 to learn.
    drawn_corrections(in_clone(repo, FEEDBACK_DIR), 50)
    # Each of the 35 joins the training split 3 times. (With the default, 0, the split
    # stays MNIST's: test_preprocess checks that it is then the same file.)
    set_params(repo, preprocess={"feedback_repeat": 3}, train={"epochs": 2})
    out = sh("dvc", "repro", cwd=repo, MNIST_MIRROR=str(mirror))
    # (The pieces too: they are cut from the training split's digits.)
    stages = ["preprocess", "pieces", "train", "lines", "export", "evaluate", "register"]
    assert re.findall(r"Running stage '(\w+)'", out) == stages
    assert "50 corrected digits: 15 held out, 35 x 3 in the training split" in out
    metrics = json.loads((in_clone(repo, METRICS_PATH)).read_text())
    assert metrics["feedback"]["digits"] == 15
    # The share of the 15 held-out digits read right: a whole number of them.
    read_right = metrics["feedback"]["accuracy"] * 15
    assert abs(read_right - round(read_right)) < 0.01

    client = registry(repo)
    newest = max(
        client.search_model_versions(f"name = '{MODEL_NAME}'"), key=lambda v: int(v.version)
    )
    run = client.get_run(newest.run_id)
    [learned] = run.inputs.dataset_inputs
    assert learned.dataset.name == "feedback"
    assert learned.dataset.digest == feedback.digest(in_clone(repo, FEEDBACK_DIR))[:20]
    assert json.loads(learned.dataset.profile)["features_shape"] == [35, 28, 28, 1]
    assert {tag.key: tag.value for tag in learned.tags}["corrections"] == "35"
    assert run.data.params["data.train_images"] == str(1000 + 35 * 3)
    assert run.data.metrics["feedback_accuracy"] == metrics["feedback"]["accuracy"]
    assert newest.tags["feedback_accuracy"] == str(metrics["feedback"]["accuracy"])
    assert newest.description.startswith("Trained on MNIST and 35 corrections from the drawing")


def test_training_shows_a_progress_bar_at_a_terminal_and_lines_in_a_log(work, tmp_path):
    at_terminal = train_output(work, tmp_path / "terminal", terminal=True)
    # Keras' progress bar: redrawn in place (\r) as steps complete, with the time per step.
    assert "\r" in at_terminal and "━" in at_terminal and "/step" in at_terminal
    in_log = train_output(work, tmp_path / "log", terminal=False)
    assert "━" not in in_log and "\r" not in in_log
    epoch_lines = [line for line in in_log.splitlines() if "val_accuracy" in line]
    assert len(epoch_lines) == 1  # one epoch (the work folder's last model), one line
