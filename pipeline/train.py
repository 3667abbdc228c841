"""Stage 3: train the CNN on the training split, watched on the validation split.

Every run is tracked in MLflow as it trains (parameters, data checksums, git commit,
per-epoch metrics, training curves). The run id goes to models/mlflow_run.json so that
the register stage adds the test metrics and the model to the same run.
"""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from pipeline.params import load_params
from pipeline.paths import MODEL_PATH, PREPARED_DIR, REPORTS_DIR, RUN_PATH, written_whole

SPLITS = [PREPARED_DIR / "train.npz", PREPARED_DIR / "val.npz"]  # what training reads


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


def make_dataset(x, y, batch_size: int, shuffle_seed: int | None = None, augment: bool = False):
    """Batches of uint8 images, shuffled each epoch when a seed is given, distorted a
    little when augment is set (see `distort`), prefetched."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augment:
        dataset = dataset.map(distort(shuffle_seed), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def distort(seed: int | None):
    """A function that varies a batch of digits as people's writing varies: turned by up
    to 10 degrees, 10% larger or smaller, moved by up to 2 pixels, and a third of them
    written with a thicker pen, a third with a thinner one. Still uint8."""
    import keras
    import tensorflow as tf

    layers = keras.Sequential(
        [
            keras.layers.RandomRotation(0.03, fill_mode="constant", seed=seed),
            keras.layers.RandomZoom(0.1, fill_mode="constant", seed=seed),
            keras.layers.RandomTranslation(0.07, 0.07, fill_mode="constant", seed=seed),
        ]
    )

    def apply(images, labels):
        x = layers(tf.cast(images, tf.float32), training=True)
        thicker = tf.nn.max_pool2d(x, 2, 1, "SAME")
        thinner = -tf.nn.max_pool2d(-x, 2, 1, "SAME")
        pen = tf.random.uniform([tf.shape(x)[0], 1, 1, 1], seed=seed)
        x = tf.where(pen < 1 / 3, thicker, tf.where(pen < 2 / 3, thinner, x))
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8), labels

    return apply


def fit(train, val, p: dict, callbacks: list) -> tuple:
    """Train the CNN with the train parameters p; return the model and its history.

    The learning rate warms up over the first warmup_epochs, from a tenth of its peak,
    then decays to 0 along a cosine (big steps first, fine ones last). The last epoch's
    weights are the model: the schedule ends on its finest steps, and 5,000 validation
    images cannot choose between epochs 0.1 point apart (docs/pipeline.md).
    """
    import keras

    from pipeline.model import build_model

    # Mixed precision computes in bfloat16 and keeps float32 weights: up to 2x faster on
    # CPUs with native bfloat16, slower where it is emulated, so off by default
    # (docs/benchmarks.md).
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if p["mixed_precision"] else "float32")
    keras.utils.set_random_seed(p["seed"])
    model = build_model(learning_rate_schedule(len(train["y"]), p))
    history = model.fit(
        make_dataset(
            train["x"], train["y"], p["batch_size"], shuffle_seed=p["seed"], augment=p["augment"]
        ),
        validation_data=make_dataset(val["x"], val["y"], 1024),
        epochs=p["epochs"],
        callbacks=callbacks,
        shuffle=False,  # the dataset reshuffles itself every epoch
        # At a terminal, a progress bar with the time left in the epoch; in a log, a line per epoch.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return model, history.history


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

    from pipeline import plots, tracking

    train, val = (np.load(path) for path in SPLITS)
    tracking.use_store(params["mlflow"]["experiment"])
    with tracking.marked_run() as run:
        mlflow.log_params(tracking.training_params(params))
        mlflow.log_params({f"data.{path.stem}_sha256": file_sha256(path) for path in SPLITS})
        mlflow.log_params({"data.train_images": len(train["y"]), "data.val_images": len(val["y"])})
        mlflow.set_tag("git_commit", git_commit())

        started = time.perf_counter()
        model, history = fit(train, val, p, [mlflow.keras.MlflowCallback(log_every_epoch=True)])
        seconds = time.perf_counter() - started

        epochs_run = len(history["loss"])
        mlflow.log_metrics(
            {
                "final_val_accuracy": history["val_accuracy"][-1],
                "train_seconds": seconds,
                "train_images_per_second": len(train["y"]) * epochs_run / seconds,
            }
        )

        with written_whole(MODEL_PATH) as path:
            model.save(path)
        write_history(history, REPORTS_DIR / "training_history.csv")
        plots.training_curves(history, REPORTS_DIR / "training_curves.png")
        mlflow.log_artifact(str(REPORTS_DIR / "training_curves.png"), "plots")
        with written_whole(RUN_PATH) as path:
            path.write_text(json.dumps({"run_id": run.info.run_id}) + "\n")
    print(
        f"train: {epochs_run} epochs in {seconds:.0f} s, "
        f"validation accuracy {history['val_accuracy'][-1]:.4f}"
    )


def write_history(history: dict[str, list[float]], path: Path) -> None:
    columns = ["loss", "accuracy", "val_loss", "val_accuracy"]
    lines = ["epoch," + ",".join(columns)]
    for epoch in range(len(history["loss"])):
        lines.append(f"{epoch + 1}," + ",".join(f"{history[c][epoch]:.6f}" for c in columns))
    with written_whole(path) as partial:
        partial.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    from pipeline.tracking import errors_in_one_line

    with errors_in_one_line():
        main()
