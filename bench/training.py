"""Training speed and accuracy: the original tutorial's way against the pipeline's.

    python bench/training.py          # about 12 minutes on 2 cores; needs `make run` data
    python bench/training.py --quick  # 1 epoch of 2,000 images each way: does it still run?

Each way trains in a process of its own (for its peak memory) on this machine's CPU:

- tutorial: `model.fit` on float32 NumPy arrays scaled to [0, 1] and one-hot labels, all
  60,000 training images, batch 128, Adadelta learning rate 1.0 constant, 12 epochs;
- pipeline: `pipeline.train.fit` with params.yaml's train parameters: uint8 arrays
  through tf.data with prefetching, scaling inside the model, cosine-decayed learning
  rate, 55,000 images with 5,000 held out for validation, the last epoch kept.

After every epoch the test accuracy is measured (outside the timed training time) to
find when it first reaches 99.0% and 99.3%. The test set chooses nothing: both ways
keep their last epoch. The
table also gives the share of the machine's cores that training kept busy (process CPU
time over training time and cores) and the pipeline's training time to its final model
as a fraction of the tutorial's, measured in the same run.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_name  # noqa: E402  (bench/machine.py)

GOALS = (0.99, 0.993)  # test accuracies whose first epoch is reported
# --quick: each way trains QUICK_EPOCHS on QUICK_IMAGES (the children read it from here).
QUICK = os.environ.get("BENCH_QUICK") == "1"
QUICK_IMAGES, QUICK_EPOCHS = 2000, 1

# Forward FLOP per image: each multiply-add counts 2.
FORWARD_FLOP = (
    26 * 26 * 32 * 3 * 3 * 1 * 2  # Conv2D 32, 3x3, on 28x28x1
    + 24 * 24 * 64 * 3 * 3 * 32 * 2  # Conv2D 64, 3x3, on 26x26x32
    + 12 * 12 * 64 * 256 * 2  # Dense 256 on the 9,216 pooled features
    + 256 * 10 * 2  # Dense 10
)
TRAIN_FLOP = 3 * FORWARD_FLOP  # forward, plus a backward pass that costs about twice as much


def matmul_gflops() -> float:
    """This machine's float32 matrix multiply in TensorFlow, GFLOP/s (best of 5)."""
    import tensorflow as tf

    n = 2048
    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    tf.matmul(a, b).numpy()
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(5):
            c = tf.matmul(a, b)
        c.numpy()
        best = max(best, 5 * 2 * n**3 / (time.perf_counter() - started) / 1e9)
    return best


def test_accuracy_callback(x_test, y_test, log: list):
    """Records per epoch: training seconds and CPU seconds so far (evaluation excluded),
    and the test accuracy."""
    import keras
    import numpy as np

    from pipeline.evaluate import digits_read

    class TestAccuracy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.train_seconds = self.cpu_seconds = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.cpu_started = time.perf_counter(), cpu_time()

        def on_epoch_end(self, epoch, logs=None):
            # Keras has run the validation pass already; count it as training time.
            self.train_seconds += time.perf_counter() - self.started
            self.cpu_seconds += cpu_time() - self.cpu_started
            predicted = digits_read(self.model, x_test)
            log.append(
                {
                    "epoch": epoch + 1,
                    "train_seconds": self.train_seconds,
                    "cpu_seconds": self.cpu_seconds,
                    "test_accuracy": float(np.mean(predicted == y_test)),
                }
            )

    return TestAccuracy()


def cpu_time() -> float:
    """CPU seconds this process has used, in all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_tutorial(log: list) -> tuple[int, float]:
    """The tutorial's recipe; returns (training images, final test accuracy)."""
    import keras

    from pipeline.preprocess import load_split

    x, y = load_split("train", 60_000)
    if QUICK:
        x, y = x[:QUICK_IMAGES], y[:QUICK_IMAGES]
    x_test, y_test = load_split("t10k", 10_000)
    x = x.astype("float32") / 255  # the tutorial scales outside the model ...
    y_one_hot = keras.utils.to_categorical(y, 10)
    keras.utils.set_random_seed(42)
    # The tutorial's own code: float input in [0, 1], no Rescaling layer, one-hot labels.
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adadelta(learning_rate=1.0),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    x_test_float = x_test.astype("float32") / 255
    callback = test_accuracy_callback(x_test_float, y_test, log)
    epochs = QUICK_EPOCHS if QUICK else 12
    model.fit(x, y_one_hot, batch_size=128, epochs=epochs, callbacks=[callback], verbose=2)
    return len(x), log[-1]["test_accuracy"]


def run_pipeline(log: list) -> tuple[int, float]:
    import numpy as np

    from core.params import load_params
    from core.paths import PREPARED_DIR
    from pipeline.evaluate import digits_read
    from pipeline.train import fit

    p = load_params()["train"]
    train, val, test = (dict(np.load(PREPARED_DIR / f"{n}.npz")) for n in ("train", "val", "test"))
    if QUICK:
        train = {key: train[key][:QUICK_IMAGES] for key in ("x", "y")}
        p = p | {"epochs": QUICK_EPOCHS, "warmup_epochs": 0}
    callback = test_accuracy_callback(test["x"], test["y"], log)
    model = fit(train, val, p, [callback])
    # The last epoch's weights are the final model, as in the pipeline.
    predicted = digits_read(model, test["x"])
    return len(train["y"]), float(np.mean(predicted == test["y"]))


def child(way: str) -> None:
    log: list = []
    started = time.perf_counter()
    images, final = {"tutorial": run_tutorial, "pipeline": run_pipeline}[way](log)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"images": images, "final": final, "log": log, "wall": wall, "peak_mb": peak_mb})
    )


def first_epoch(log: list[dict], goal: float) -> str:
    """'4 (108 s)': the first epoch whose test accuracy reached goal, and the time to it."""
    reached = next((e for e in log if e["test_accuracy"] >= goal), None)
    return f"{reached['epoch']} ({reached['train_seconds']:.0f} s)" if reached else "never"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch of 2,000 images each way")
    args = parser.parse_args()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", BENCH_QUICK="1" if args.quick else "0")
    results = {}
    for way in ("tutorial", "pipeline"):
        print(f"training the {way} way ...", flush=True)
        out = subprocess.run(
            [sys.executable, __file__, way], env=env, capture_output=True, text=True, check=True
        ).stdout
        results[way] = json.loads(out.strip().splitlines()[-1])
    gflops = matmul_gflops()
    floor = gflops * 1e9 / TRAIN_FLOP

    cores = os.cpu_count()
    print(f"\nmachine: {cpu_name()}, {cores} CPUs, {platform.node()}")
    print(f"FLOP per training image: {TRAIN_FLOP / 1e6:.1f} M (forward {FORWARD_FLOP / 1e6:.1f} M)")
    print(f"matrix multiply: {gflops:.0f} GFLOP/s -> compute floor {floor:.0f} images/s\n")
    reach = " | ".join(f"{goal:.1%} test at epoch (training s)" for goal in GOALS)
    print(
        "| way | images/s | s/epoch | fraction of floor | cores busy | peak memory (MB) "
        f"| {reach} | epochs | training s | final test accuracy |"
    )
    print("| --- " * (9 + len(GOALS)) + "|")
    for way, r in results.items():
        log = r["log"]
        seconds = log[-1]["train_seconds"]
        rate = r["images"] * len(log) / seconds
        busy = log[-1]["cpu_seconds"] / seconds / cores
        reached = " | ".join(first_epoch(log, goal) for goal in GOALS)
        print(
            f"| {way} | {rate:.0f} | {seconds / len(log):.1f} | {rate / floor:.2f} "
            f"| {busy:.0%} of {cores} | {r['peak_mb']:.0f} | {reached} | {len(log)} "
            f"| {seconds:.0f} | {r['final']:.4f} |"
        )
    pipeline, tutorial = (results[w]["log"][-1]["train_seconds"] for w in ("pipeline", "tutorial"))
    print(f"\npipeline / tutorial training time to the final model: {pipeline / tutorial:.2f}x")
    for way, r in results.items():
        curve = ", ".join(f"{e['test_accuracy']:.4f}" for e in r["log"])
        print(f"\n{way}: test accuracy per epoch: {curve}")


if __name__ == "__main__":
    if sys.argv[1:] in (["tutorial"], ["pipeline"]):
        child(sys.argv[1])
    else:
        main()
