"""Stage 4: train the CNN on the training split and the reader's pieces (pipeline/pieces.py),
watched on the validation split.

Every run is tracked in MLflow as it trains (parameters, data checksums, git commit,
per-epoch metrics, training curves). The run id goes to models/mlflow_run.json so that
the register stage adds the test metrics and the model to the same run.

A run stopped by Ctrl+C, SIGTERM or an error resumes after its last whole epoch, in the
same MLflow run, when run again with the same parameters, data and code
(pipeline/resume.py); it then ends with the metrics of a run that never stopped.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from core.params import load_params
from core.paths import MODEL_PATH, PIECES_PATH, PREPARED_DIR, REPORTS_DIR, RUN_PATH, written_whole

SPLITS = [PREPARED_DIR / "train.npz", PREPARED_DIR / "val.npz", PIECES_PATH]  # what it reads


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
        return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def training_batches(train, p: dict, first_epoch: int):
    """The training batches of epochs first_epoch + 1 to p["epochs"], one epoch after the
    other, prefetched.

    Each epoch's order, and its distortions when p["augment"] is set, depend only on the
    seed and the epoch's number (stateless random ops): a run resumed after epoch k sees
    the same batches as a run that never stopped.
    """
    import tensorflow as tf

    images, labels = tf.constant(train["x"]), tf.constant(train["y"])

    def epoch_batches(epoch):
        seed = tf.stack([tf.constant(p["seed"], tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(len(train["y"])), seed)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(p["batch_size"])
        batches = batches.enumerate().map(
            lambda step, indices: (
                tf.random.experimental.stateless_fold_in(seed, step),
                tf.gather(images, indices),
                tf.gather(labels, indices),
            )
        )
        if p["augment"]:
            return batches.map(distort, num_parallel_calls=tf.data.AUTOTUNE)
        return batches.map(lambda seed, x, y: (x, y))

    epochs = tf.data.Dataset.range(first_epoch, p["epochs"])
    return epochs.flat_map(epoch_batches).prefetch(tf.data.AUTOTUNE)


def distort(seed, images, labels):
    """Vary a batch of digits as people's writing varies: turned by up to 11 degrees, 10%
    larger or smaller, moved by up to 2 pixels, and a third of them written with a thicker
    pen, a third with a thinner one. The same seed gives the same distortions. Still uint8.
    """
    import math

    import keras
    import tensorflow as tf

    turn, size, move, pen = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    count = tf.shape(images)[0]
    angle = tf.random.stateless_uniform([count], turn, -0.06 * math.pi, 0.06 * math.pi)
    scale = tf.random.stateless_uniform([count], size, 0.9, 1.1)
    dx, dy = tf.unstack(tf.random.stateless_uniform([2, count], move, -2.0, 2.0))
    # Each output pixel p takes the input pixel at A (p - c) + c + shift, where A turns and
    # scales about the centre c (Keras' projective transform, in its 8-number form).
    cos, sin, c = scale * tf.cos(angle), scale * tf.sin(angle), 13.5
    zero = tf.zeros([count])
    transform = tf.stack(
        [cos, -sin, c - c * cos + c * sin + dx, sin, cos, c - c * sin - c * cos + dy, zero, zero],
        axis=1,
    )
    x = keras.ops.image.affine_transform(
        tf.cast(images, tf.float32), transform, interpolation="bilinear", fill_mode="constant"
    )
    thicker = tf.nn.max_pool2d(x, 2, 1, "SAME")
    thinner = -tf.nn.max_pool2d(-x, 2, 1, "SAME")
    pen = tf.random.stateless_uniform([count, 1, 1, 1], pen)
    x = tf.where(pen < 1 / 3, thicker, tf.where(pen < 2 / 3, thinner, x))
    return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8), labels


def fit(train, val, p: dict, callbacks: list, resume_from: Path | None = None):
    """Train the CNN with the train parameters p and return it; from the model saved at
    resume_from (its optimiser state and epoch count included) when given.

    The learning rate warms up over the first warmup_epochs, from a tenth of its peak,
    then decays to 0 along a cosine (big steps first, fine ones last). The last epoch's
    weights are the model: the schedule ends on its finest steps, and 5,000 validation
    images cannot choose between epochs 0.1 point apart (docs/pipeline.md).

    Ctrl+C or SIGTERM stops training at the end of the current batch, sets
    `model.stop_training` for the callbacks, and is raised once `fit` has returned.
    """
    import keras

    from core.runs import SignalsRecorded
    from pipeline.model import build_model

    # Mixed precision computes in bfloat16 and keeps float32 weights: up to 2x faster on
    # CPUs with native bfloat16, slower where it is emulated, so off by default
    # (docs/benchmarks.md).
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if p["mixed_precision"] else "float32")
    keras.utils.set_random_seed(p["seed"])
    if resume_from:
        model = keras.models.load_model(resume_from)
    else:
        model = build_model(learning_rate_schedule(len(train["y"]), p))
    steps_per_epoch = -(-len(train["y"]) // p["batch_size"])
    first_epoch = int(model.optimizer.iterations) // steps_per_epoch

    def reseed_dropout(epoch: int, logs: dict) -> None:
        # Dropout draws its masks from a state that Keras does not save with the model:
        # each epoch's starts from the seed and the epoch's number, as its batches do.
        for number, layer in enumerate(model.layers):
            if isinstance(layer, keras.layers.Dropout):
                layer.seed_generator.state.assign([p["seed"] + number, epoch * 2**20])

    with SignalsRecorded() as signals:

        def stop_if_signalled(batch: int, logs: dict) -> None:
            if signals.received:
                model.stop_training = True

        model.fit(
            training_batches(train, p, first_epoch),
            steps_per_epoch=steps_per_epoch,
            initial_epoch=first_epoch,
            epochs=p["epochs"],
            shuffle=False,  # each epoch's order is in training_batches
            validation_data=(val["x"], val["y"]),
            validation_batch_size=1024,
            callbacks=[
                keras.callbacks.LambdaCallback(
                    on_epoch_begin=reseed_dropout, on_train_batch_end=stop_if_signalled
                ),
                *callbacks,
            ],
            # At a terminal, a progress bar with the time left in the epoch; in a log, a
            # line per epoch.
            verbose=1 if sys.stdout.isatty() else 2,
        )
    return model


def learning_rate_schedule(images: int, p: dict):
    """Warm-up then cosine decay, per step, for the train parameters p."""
    import keras

    steps_per_epoch = -(-images // p["batch_size"])
    warmup = steps_per_epoch * p["warmup_epochs"]
    peak = p["learning_rate"]
    return keras.optimizers.schedules.CosineDecay(
        peak / 10 if warmup else peak,
        decay_steps=steps_per_epoch * p["epochs"] - warmup,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def main() -> None:
    params = load_params()  # before the slow imports: bad parameters fail at once
    p = params["train"]

    import mlflow
    import numpy as np

    from core.runs import marked_run, run_exists, training_params
    from core.store import use_store
    from pipeline import plots, resume

    train, val, pieces = (np.load(path) for path in SPLITS)
    run_params = training_params(params)
    run_params |= {f"data.{path.stem}_sha256": file_sha256(path) for path in SPLITS}
    run_params |= {"data.train_images": len(train["y"]), "data.val_images": len(val["y"])}
    run_params["data.pieces_images"] = len(pieces["y"])
    # The corrections from the drawing app that the training split holds (preprocess).
    run_params["data.feedback_digits"] = int(train["feedback_digits"])
    run_params["data.feedback_digest"] = str(train["feedback_digest"])[:20]
    experiment = params["mlflow"]["experiment"]
    use_store(experiment)
    fingerprint = resume.fingerprint(run_params | {"experiment": experiment})
    backup = resume.load(fingerprint)
    if backup and not run_exists(backup.run_id):  # kept while using another store
        backup = None
    with marked_run(run_id=backup.run_id if backup else None) as run:
        if backup:
            print(f"train: resuming MLflow run {backup.run_id} after epoch {backup.epochs}")
            mlflow.set_tag("resumed_after_epoch", backup.epochs)
        else:
            backup = resume.Backup(fingerprint, run.info.run_id, epochs=0, history={}, seconds=0)
            mlflow.log_params(run_params)
            mlflow.set_tag("git_commit", git_commit())
            log_feedback_input(train)

        resume_from = backup.model_path if backup.epochs else None
        learn = {key: np.concatenate([train[key], pieces[key]]) for key in ("x", "y")}
        model = fit(learn, val, p, [resume.every_whole_epoch(backup)], resume_from)
        history, seconds = backup.history, backup.seconds
        mlflow.log_metrics(
            {
                "final_val_accuracy": history["val_accuracy"][-1],
                "train_seconds": seconds,
                "train_images_per_second": len(learn["y"]) * p["epochs"] / seconds,
            }
        )

        with written_whole(MODEL_PATH) as path:
            model.save(path)
        write_history(history, REPORTS_DIR / "training_history.csv")
        plots.training_curves(history, REPORTS_DIR / "training_curves.png")
        mlflow.log_artifact(str(REPORTS_DIR / "training_curves.png"), "plots")
        with written_whole(RUN_PATH) as path:
            path.write_text(json.dumps({"run_id": run.info.run_id}) + "\n")
        resume.discard()  # finished: nothing to resume
    print(
        f"train: {p['epochs']} epochs in {seconds:.0f} s, "
        f"validation accuracy {history['val_accuracy'][-1]:.4f}"
    )


def log_feedback_input(train) -> None:
    """The app's corrections that the training split holds, as the run's dataset input
    `feedback`: their digest (which set, docs/feedback.md) and their number."""
    import mlflow

    count = int(train["feedback_digits"])
    if count:
        # They close the training split; the last `count` images are one copy of each.
        dataset = mlflow.data.from_numpy(
            train["x"][-count:],
            targets=train["y"][-count:],
            source="feedback/corrections",
            name="feedback",
            digest=str(train["feedback_digest"])[:20],
        )
        mlflow.log_input(dataset, context="training", tags={"corrections": str(count)})


def write_history(history: dict[str, list[float]], path: Path) -> None:
    columns = ["loss", "accuracy", "val_loss", "val_accuracy"]
    lines = ["epoch," + ",".join(columns)]
    for epoch in range(len(history["loss"])):
        lines.append(f"{epoch + 1}," + ",".join(f"{history[c][epoch]:.6f}" for c in columns))
    with written_whole(path) as partial:
        partial.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    from core.errors import command

    command(main)
