"""Stage 4b: the line reader, a second network that reads a number's ink whole.

Where digits touch or overlap as in fast writing, no cut gives the digit network whole
digits (docs/reading.md). The line reader needs no cuts: it reads the number's line
(digit_reader/normalize.py: Line, 32 rows, any width) and answers the digits in
order, trained with CTC (Connectionist Temporal Classification: the loss sums over every
way of placing the digits along the line, so no position is ever labelled). What it
answers and how the registered model uses it: digit_reader/lines.py.

It learns from numbers of MNIST *training* digits (never the validation or test
digits) written as people do: 1 to 7 digits, tight, touching and overlapping or spaced,
sizes varying, the writing line wandering, thin pens now and then. They are made afresh
from the seed each time (a minute on 2 cores), not stored.

Its own MLflow run (run name `lines`, its loss per epoch) is named by
models/lines_run.json; the version registered with it records it (pipeline/register.py).
Writes models/lines.keras.
"""

import json
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from core.params import load_params
from core.paths import LINES_PATH, LINES_RUN_PATH, PREPARED_DIR, written_whole
from digit_reader.lines import BLANK, EMPTY_AFTER, STRIDE, WIDTH, best_path
from digit_reader.normalize import LINE_HEIGHT, line_of
from synthetic.numbers import compose, compose_touching, mnist_digit

MAX_DIGITS = 7  # digits per training number
HELD_OUT_LINES = 1000  # numbers of validation digits it is measured on after training


def line_number(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
    """The line of one number of training digits written fast or spaced, and its digits."""
    height = float(np.exp(rng.uniform(np.log(20), np.log(140))))
    pen = rng.uniform(1.0, 2.5) if rng.random() < 0.3 else None
    chosen = rng.integers(len(labels), size=int(rng.integers(1, MAX_DIGITS + 1)))
    inks = [
        mnist_digit(images[i, ..., 0], max(12, round(height * rng.uniform(0.8, 1.1))), pen)
        for i in chosen
    ]
    if rng.random() < 0.6:
        ink, _ = compose_touching(inks, height, (0.0, 0.2), 0.04, rng)
    else:
        ink, _ = compose(inks, height, rng.uniform(-0.05, 0.6), 0.04, rng)
    line = line_of(ink)
    if line is None:  # ink too faint to be read (a thin pen on a tiny digit): another one
        return line_number(images, labels, rng)
    return line.pixels, labels[chosen]


def _some_lines(images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    x = np.zeros((count, LINE_HEIGHT, WIDTH, 1), dtype=np.uint8)
    widths = np.zeros(count, dtype=np.int32)
    targets = np.full((count, MAX_DIGITS), BLANK, dtype=np.int32)
    lengths = np.zeros(count, dtype=np.int32)
    for k in range(count):
        pixels, digits = line_number(images, labels, rng)
        width = min(pixels.shape[1], WIDTH)
        x[k, :, :width, 0] = pixels[:, :width]
        widths[k], lengths[k] = width, len(digits)
        targets[k, : len(digits)] = digits
    return {"x": x, "widths": widths, "targets": targets, "lengths": lengths}


def make_lines(images: np.ndarray, labels: np.ndarray, count: int, seed: int) -> dict:
    """`count` training lines, the same for the same seed: x (count, 32, WIDTH, 1) uint8,
    widths, targets (digits, BLANK after the last) and lengths."""
    chunks = 2  # one per core: making them is Python's work, not TensorFlow's
    sizes = [count // chunks + (i < count % chunks) for i in range(chunks)]
    with ProcessPoolExecutor(chunks) as pool:
        parts = list(
            pool.map(
                _some_lines,
                [images] * chunks,
                [labels] * chunks,
                sizes,
                [seed * 100 + i for i in range(chunks)],
            )
        )
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def build_line_model():
    """Convolutions over the line (4 blocks; each frame sees about two digits' width),
    then over its columns, to 11 answers per STRIDE columns: logits of the digits and
    BLANK."""
    import keras
    from keras import layers

    line = keras.Input((LINE_HEIGHT, None, 1), dtype="uint8", name="line")
    x = layers.Rescaling(1 / 255)(line)
    for filters, pool in [(32, 2), (64, 2), (96, (2, 1)), (96, (2, 1))]:
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(pool)(x)
    x = layers.Permute((2, 1, 3))(x)  # columns first: one frame per STRIDE columns
    x = layers.Reshape((-1, (LINE_HEIGHT // 16) * 96))(x)
    x = layers.Conv1D(192, 5, padding="same", activation="relu")(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Conv1D(192, 5, padding="same", activation="relu", dilation_rate=2)(x)
    x = layers.Dropout(0.25)(x)
    return keras.Model(line, layers.Dense(BLANK + 1)(x), name="line_reader")


def batches_by_width(lines: dict, size: int, rng: np.random.Generator):
    """One epoch of batches (x, targets, lengths, widths) in random order, each of lines
    of about the same width, cropped to the widest of them and EMPTY_AFTER columns more:
    the lines are 80 columns wide on average, so a batch padded to WIDTH is two thirds
    empty columns, and cropping makes an epoch twice as fast. Each line still has empty
    columns after it, as when it is read (digit_reader/lines.py: padded)."""
    order = rng.permutation(len(lines["x"]))
    pool = size * 50  # lines sorted by width together: the batches' widths still vary
    batches = []
    for start in range(0, len(order), pool):
        chosen = order[start : start + pool]
        chosen = chosen[np.argsort(lines["widths"][chosen], kind="stable")]
        batches += [chosen[k : k + size] for k in range(0, len(chosen), size)]
    for chosen in (batches[k] for k in rng.permutation(len(batches))):
        columns = -(-(int(lines["widths"][chosen].max()) + EMPTY_AFTER) // STRIDE) * STRIDE
        x = lines["x"][chosen, :, : min(columns, WIDTH)]
        yield x, lines["targets"][chosen], lines["lengths"][chosen], lines["widths"][chosen]


def fit_lines(lines: dict, p: dict, log_epoch) -> object:
    """The line reader trained with CTC on `lines` (Adam, warm-up then cosine decay);
    log_epoch(epoch, mean loss) after each epoch."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(p["seed"])
    model = build_line_model()
    batches = -(-len(lines["x"]) // p["batch_size"])
    warmup = min(200, batches)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        max(1, p["epochs"] * batches - warmup),
        warmup_target=p["learning_rate"],
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.Adam(schedule)

    # Any width of line: one graph for all (else each width of batch traced its own).
    @tf.function(
        input_signature=[
            tf.TensorSpec((None, LINE_HEIGHT, None, 1), tf.uint8),
            *(tf.TensorSpec(shape, tf.int32) for shape in [(None, MAX_DIGITS), (None,), (None,)]),
        ]
    )
    def step(x, targets, lengths, widths):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            frames = widths // STRIDE
            loss = keras.ops.ctc_loss(targets, logits, lengths, frames, mask_index=BLANK)
            loss = tf.reduce_mean(loss)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    rng = np.random.default_rng(p["seed"])
    for epoch in range(p["epochs"]):
        losses = [float(step(*batch)) for batch in batches_by_width(lines, p["batch_size"], rng)]
        log_epoch(epoch, float(np.mean(losses)))
    return model


def line_accuracy(model, lines: dict) -> float:
    """Share of the lines whose best path is exactly their digits."""
    right = 0
    for x, targets, lengths, widths in batches_by_width(lines, 256, np.random.default_rng(0)):
        logits = np.asarray(model(x, training=False))
        for answers, digits, length, width in zip(logits, targets, lengths, widths, strict=True):
            read = [digit for digit, _, _ in best_path(answers[: width // STRIDE])]
            right += read == list(digits[:length])
    return right / len(lines["x"])


def main() -> None:
    params = load_params()
    p = params["lines"]

    import time

    import mlflow

    from core.runs import marked_run
    from core.store import use_store

    with np.load(PREPARED_DIR / "train.npz") as train:
        images, labels = train["x"], train["y"]
    use_store(params["mlflow"]["experiment"])
    with marked_run(run_name="lines") as run:
        mlflow.log_params({f"lines.{key}": value for key, value in p.items()})
        mlflow.set_tag("trains", "line reader")
        start = time.perf_counter()
        lines = make_lines(images, labels, p["numbers"], p["seed"])

        def log_epoch(epoch: int, loss: float) -> None:
            mlflow.log_metric("ctc_loss", loss, step=epoch + 1)
            print(f"lines: epoch {epoch + 1}/{p['epochs']}, CTC loss {loss:.3f}", flush=True)

        model = fit_lines(lines, p, log_epoch)
        seconds = time.perf_counter() - start
        # Numbers of validation digits, which it never saw: how well it reads on its own.
        with np.load(PREPARED_DIR / "val.npz") as val:
            held_out = make_lines(val["x"], val["y"], HELD_OUT_LINES, p["seed"] + 1)
        accuracy = line_accuracy(model, held_out)
        mlflow.log_metrics({"train_seconds": seconds, "held_out_line_accuracy": accuracy})
        with written_whole(LINES_PATH) as path:
            model.save(path)
        with written_whole(LINES_RUN_PATH) as path:
            path.write_text(json.dumps({"run_id": run.info.run_id}) + "\n")
    print(
        f"lines: {p['numbers']} numbers, {p['epochs']} epochs in {seconds:.0f} s; "
        f"{accuracy:.2%} of {HELD_OUT_LINES} numbers of validation digits read right"
    )


if __name__ == "__main__":
    from core.errors import command

    command(main)
