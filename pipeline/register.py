"""Stage 7: make sure the MLflow registry holds the model that dvc.lock describes.

The registered model is the pictures-to-digits pyfunc of digit_reader/digit_model.py with the
trained network inside. A new version whose test accuracy reaches promote.min_accuracy
becomes `champion` when there is none yet, and `challenger` otherwise: a person promotes
challengers with `python -m pipeline.promote`.

DVC runs this stage every time (`always_changed`): the registry is outside DVC's view.
The store may be another one (MLFLOW_TRACKING_URI, the team's server), the clone a fresh
one whose model came from the DVC remote or the run cache without training. It is
idempotent and quick when there is nothing to do: a version is identified by the md5s
of models/model.keras and models/lines.keras (their hashes in dvc.lock) and the md5 of
the serving code packaged with them, and a model already registered is not registered
again. (Not by its ONNX
exports, models/*.onnx, which the version ships and runs: converting the same network
again gives other bytes, and evaluate has checked that it reads as the network does.)
Its evaluation is brought up to date, though: after a change to `evaluate`, to the
numbers benchmark or to the held-out corrections, the version's tags and its run's
metrics show the new figures of reports/metrics.json. When the training run is not in
this store (the model was trained against another one), a new run is created for it.
"""

import hashlib
import json
from pathlib import Path

from core.answer_log import EVALUATION_ANSWERS
from core.params import load_params
from core.paths import (
    LINES_PATH,
    LINES_RUN_PATH,
    METRICS_PATH,
    MODEL_PATH,
    REPORTS_DIR,
    RUN_PATH,
)
from pipeline.promote import auto_promote

PLOTS = [REPORTS_DIR / "confusion.png", REPORTS_DIR / "misclassified.png"]


def md5(*paths: Path) -> str:
    digest = hashlib.md5()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def main() -> None:
    params = load_params()
    name = params["mlflow"]["model_name"]

    import mlflow
    from mlflow.exceptions import MlflowException

    from core.packaging import MODEL_CODE, model_arguments
    from core.runs import marked_run
    from core.store import use_store

    use_store(params["mlflow"]["experiment"])
    client = mlflow.MlflowClient()
    identity = {
        "model_md5": md5(MODEL_PATH),
        "lines_md5": md5(LINES_PATH),
        "code_md5": md5(*MODEL_CODE),
    }
    figures = evaluation(json.loads(METRICS_PATH.read_text()))
    if existing := same_model(client, name, identity):
        changed = bring_up_to_date(client, existing, figures)
        print(
            f"register: this model is already {name} version {existing.version}"
            + (f"; its evaluation brought up to date: {', '.join(changed)}" if changed else "")
        )
        return

    run_id = json.loads(RUN_PATH.read_text())["run_id"]
    lines_run_id = json.loads(LINES_RUN_PATH.read_text())["run_id"]  # the line reader's
    try:
        client.get_run(run_id)
    except MlflowException:
        run_id = new_run_for_restored_model(params, trained_in=run_id)

    with marked_run(run_id=run_id):
        mlflow.log_metrics(figures)
        mlflow.log_artifact(str(METRICS_PATH))
        mlflow.log_artifact(str(EVALUATION_ANSWERS), "evaluation")  # for serving/report.py
        for plot in PLOTS:
            mlflow.log_artifact(str(plot), "plots")
        model_uri = mlflow.pyfunc.log_model(name="model", **model_arguments(MODEL_PATH)).model_uri
    version = mlflow.register_model(
        model_uri,
        name,
        tags={**tagged(figures), "run_id": run_id, "lines_run_id": lines_run_id, **identity},
    )
    # Another register (a queued experiment, a teammate) may have registered the same model
    # since we looked: the lowest version stays, and the others are removed, by whoever
    # sees them, so racing registers end with one version.
    first = same_model(client, name, identity)
    if first.version != version.version:
        client.delete_model_version(name, version.version)
        print(f"register: this model became {name} version {first.version} meanwhile")
        return
    client.update_model_version(name, version.version, description=training_data(client, run_id))
    alias = auto_promote(client, name, version.version, params["promote"]["min_accuracy"])
    print(
        f"register: {name} version {version.version} (test accuracy {figures['test_accuracy']}), "
        + (f"alias {alias}" if alias else "below promote.min_accuracy: no alias")
    )


def evaluation(metrics: dict) -> dict[str, float]:
    """The figures of reports/metrics.json that the version's run logs as metrics."""
    test = metrics["test"]
    figures = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "test_picture_accuracy": test["picture_accuracy"],
    }
    # Whole written numbers read right, per set of the benchmark (synthetic/numbers.py).
    figures |= {f"numbers_{name}": right for name, right in metrics["numbers"].items()}
    # The share of its answers with an unsure digit: the baseline of the unsure alert.
    figures["unsure_share"] = metrics["unsure_share"]
    # The held-out corrections from the app, when there are any (preprocess).
    if metrics["feedback"]["accuracy"] is not None:
        figures["feedback_accuracy"] = metrics["feedback"]["accuracy"]
    return figures


def shown(figure: str) -> bool:
    """Whether a figure is also a tag of the version (tags show in the registry's UI)."""
    shown_always = ("test_accuracy", "feedback_accuracy", "unsure_share")
    return figure in shown_always or figure.startswith("numbers_")


def tagged(figures: dict[str, float]) -> dict[str, str]:
    return {tag: str(value) for tag, value in figures.items() if shown(tag)}


def bring_up_to_date(client, version, figures: dict[str, float]) -> list[str]:
    """Set a registered version's evaluation tags, and its run's metrics, to these figures
    where they differ; drop a figure's tag that no longer has one (no held-out
    corrections any more). The tags changed, by name."""
    tags = tagged(figures)
    changed = sorted(
        [tag for tag, value in tags.items() if version.tags.get(tag) != value]
        + [tag for tag in version.tags if shown(tag) and tag not in tags]
    )
    for tag in changed:
        if tag in tags:
            client.set_model_version_tag(version.name, version.version, tag, tags[tag])
        else:
            client.delete_model_version_tag(version.name, version.version, tag)
    run_id = version.tags.get("run_id")  # the run that register logged the model in
    if changed and run_id:
        for key, value in figures.items():
            client.log_metric(run_id, key, value)
        client.log_artifact(run_id, str(METRICS_PATH))
    # The numbers benchmark's answers, for the drift report: new ones with new figures,
    # and kept for versions registered before the report existed.
    logged = {a.path for a in client.list_artifacts(run_id, "evaluation")} if run_id else set()
    if run_id and (changed or "evaluation/answers.jsonl" not in logged):
        client.log_artifact(run_id, str(EVALUATION_ANSWERS), "evaluation")
        changed = changed or ["evaluation answers"]
    return changed


def training_data(client, run_id: str) -> str:
    """What the version learned from, for its description in the registry."""
    run_params = client.get_run(run_id).data.params
    corrections = int(run_params.get("data.feedback_digits", 0))
    if not corrections:
        return "Trained on MNIST only."
    return (
        f"Trained on MNIST and {corrections} corrections from the drawing app "
        f"(feedback set {run_params['data.feedback_digest']}, docs/feedback.md)."
    )


def same_model(client, name: str, identity: dict[str, str]):
    """The lowest version of the registered model with these identity tags, or None."""
    versions = [
        version
        for version in client.search_model_versions(f"name = '{name}'")
        if all(version.tags.get(tag) == value for tag, value in identity.items())
    ]
    return min(versions, key=lambda version: int(version.version), default=None)


def new_run_for_restored_model(params: dict, trained_in: str) -> str:
    """A run in this store for a model DVC restored from its cache (trained elsewhere)."""
    import mlflow

    from core.runs import training_params

    with mlflow.start_run() as run:
        mlflow.log_params(training_params(params))
        mlflow.set_tags({"restored_from_dvc_cache": "true", "trained_in_run": trained_in})
    print(
        f"register: training run {trained_in} is not in this store; created run {run.info.run_id}"
    )
    return run.info.run_id


if __name__ == "__main__":
    from core.errors import command

    command(main)
