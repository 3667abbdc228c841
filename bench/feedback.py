"""Does the model learn from corrections made in the drawing app? A hand it reads badly,
before and after corrections of that hand join training.

The hand (`HAND`, `draw`): slashed zeros, barred sevens, ones with a flag and a foot,
closed fours, narrow digits. 300 drawings in it (30 of each digit) are read by the model of the
working tree, as the app reads them, and saved as the app saves corrections (one
drawing, one digit). 300 other drawings in the same hand (another seed) are the measure:
they never join training.

- before: models/model.keras, trained by `dvc repro` on MNIST alone;
- after: the same recipe (params.yaml, the same seed), with the corrections in the
  training split `--repeat` times (preprocess.feedback_repeat), trained in a folder of its
  own with a store of its own.

    python bench/feedback.py             # one training run: about 7 minutes on 2 cores
    python bench/feedback.py --quick     # 3 drawings a digit, 1 epoch on 2,000 images
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import feedback  # noqa: E402
from core.paths import (  # noqa: E402
    FEEDBACK_DIR,
    MODEL_PATH,
    PARAMS_PATH,
    PREPARED_DIR,
    RAW_DIR,
    in_clone,
)
from digit_reader.contract import png, read_model  # noqa: E402
from pipeline.evaluate import digits_read, packaged_model  # noqa: E402
from synthetic.numbers import arc  # noqa: E402
from synthetic.pen import pen_line  # noqa: E402

PER_DIGIT = 30  # drawings of each digit, in each of the two sets
# --quick: fewer drawings, and the training cut to a size that only shows it still runs.
QUICK_PER_DIGIT = 3
QUICK_TRAINING = {"preprocess": {"train_subset": 2000}, "pieces": {"numbers": 30}}
QUICK_TRAINING["train"] = {"epochs": 1, "warmup_epochs": 0}
QUICK_TRAINING["lines"] = {"numbers": 256, "epochs": 1}


# The hand: how some people (engineers, programmers) write. A zero with a slash through
# it, a seven with a bar, a one with a flag and a foot, a closed four, narrow digits.
HAND = {
    "0": [arc(0.5, 0.5, 0.45, 0.5, -90, 275), [(0.95, 0.0), (0.05, 1.0)]],
    "1": [[(0.15, 0.3), (0.6, 0.0), (0.6, 1.0)], [(0.2, 1.0), (1.0, 1.0)]],
    "2": [
        arc(0.5, 0.28, 0.45, 0.28, 190, 370)
        + [(0.1, 0.9)]
        + arc(0.2, 0.85, 0.12, 0.12, 90, 360)
        + [(1.0, 0.95)]
    ],
    "3": [[(0.05, 0.0), (0.95, 0.0), (0.4, 0.42)] + arc(0.5, 0.72, 0.5, 0.28, 270, 520)],
    "4": [[(0.75, 1.0), (0.75, 0.0), (0.0, 0.65), (1.0, 0.65)]],
    "5": [[(0.9, 0.0), (0.15, 0.0), (0.1, 0.45)] + arc(0.5, 0.7, 0.45, 0.3, 230, 480)],
    "6": [arc(0.5, 0.7, 0.45, 0.3, 0, 360) + [(0.08, 0.6), (0.7, 0.0)]],
    "7": [[(0.0, 0.1), (0.1, 0.0), (1.0, 0.0), (0.3, 1.0)], [(0.2, 0.5), (0.85, 0.5)]],
    "8": [arc(0.5, 0.25, 0.35, 0.25, 90, 450), arc(0.5, 0.72, 0.45, 0.28, -90, 270)],
    "9": [
        arc(0.5, 0.3, 0.45, 0.3, 0, 360)
        + [(0.95, 0.3), (0.9, 0.85)]
        + arc(0.6, 0.85, 0.3, 0.15, 0, 160)
    ],
}


def draw(label: int, rng: np.random.Generator) -> bytes:
    """One digit in the hand, 120 pixels tall and 0.28 as wide, with a pen of 5 to 8
    pixels, each stroke a little unsteady; dark ink on white, as on the app's canvas."""
    height, pen, margin = 120, rng.uniform(5, 8), 30
    width, lean = 0.28 * height, rng.uniform(-0.05, 0.05)
    picture = Image.new("L", (round(width + 0.1 * height) + 2 * margin, height + 2 * margin), 255)
    canvas = ImageDraw.Draw(picture)
    for stroke in HAND[str(label)]:
        points = np.array(stroke) + rng.normal(0, 0.02, (len(stroke), 2))
        xy = [
            (margin + x * width + lean * (1 - y) * height, margin + y * height) for x, y in points
        ]
        pen_line(canvas, xy, pen, ink=0)
    return png(np.asarray(picture))


def drawings(seed: int, per_digit: int) -> list[tuple[int, bytes]]:
    rng = np.random.default_rng(seed)
    return [(label, draw(label, rng)) for label in range(10) for _ in range(per_digit)]


def read_right(model, pictures: list[tuple[int, bytes]]) -> float:
    results = read_model(model, [picture for _, picture in pictures])
    labels = [str(label) for label, _ in pictures]
    return float(np.mean([r["digits"] == label for label, r in zip(labels, results, strict=True)]))


def save_corrections(model, pictures: list[tuple[int, bytes]], folder: Path) -> int:
    """As the app does: the model reads each drawing, and the person says what it is."""
    saved = 0
    results = read_model(model, [picture for _, picture in pictures])
    for (label, picture), result in zip(pictures, results, strict=True):
        if len(result["boxes"]) != 1:
            continue  # read as several digits: the app corrects digits, not their count
        box = result["boxes"][0]
        correction = feedback.Correction(
            label=label,
            read_as=box["digit"],
            model_version="working tree",
            drawing=feedback.new_drawing(picture, folder),
            box={key: box[key] for key in ("x", "y", "width", "height")},
            pixels=box["pixels"],
            time="2026-11-27T00:00:00+00:00",
        )
        feedback.save(correction, 1, folder)
        saved += 1
    return saved


def test_accuracy(keras_path: Path) -> float:
    import keras

    test = np.load(PREPARED_DIR / "test.npz")
    network = keras.models.load_model(keras_path)
    return float(np.mean(digits_read(network, test["x"]) == test["y"]))


def train_with(folder: Path, repeat: int, changes: dict) -> Path:
    """preprocess, train and export in folder, with its corrections repeated and the
    clone's parameters changed by changes; the model's path."""
    in_clone(folder, RAW_DIR).parent.mkdir(parents=True)
    shutil.copytree(RAW_DIR, in_clone(folder, RAW_DIR))
    params = yaml.safe_load(PARAMS_PATH.read_text())
    for section, values in changes.items():
        params[section] |= values
    params["preprocess"]["feedback_repeat"] = repeat
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        TF_CPP_MIN_LOG_LEVEL="2",
        MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}",
    )
    for stage in ("preprocess", "pieces", "train", "lines", "export"):
        subprocess.run([sys.executable, "-m", f"pipeline.{stage}"], cwd=folder, env=env, check=True)
    return in_clone(folder, MODEL_PATH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="preprocess.feedback_repeat")
    parser.add_argument("--quick", action="store_true", help="3 drawings a digit, 1 epoch")
    args = parser.parse_args()
    per_digit = QUICK_PER_DIGIT if args.quick else PER_DIGIT
    learn, measure = drawings(seed=1, per_digit=per_digit), drawings(seed=2, per_digit=per_digit)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with packaged_model(MODEL_PATH) as model:
            before = read_right(model, measure)
            learned_before = read_right(model, learn)
            saved = save_corrections(model, learn, in_clone(folder, FEEDBACK_DIR))
        after_model = train_with(folder, args.repeat, QUICK_TRAINING if args.quick else {})
        # preprocess holds out preprocess.feedback_held_out of the drawings: the rest learn.
        learned = int(np.load(in_clone(folder, PREPARED_DIR) / "train.npz")["feedback_digits"])
        with packaged_model(after_model) as model:
            after = read_right(model, measure)
        tests = test_accuracy(MODEL_PATH), test_accuracy(after_model)
    print(f"corrections: {saved} of {len(learn)} drawings (read right: {learned_before:.1%})")
    print(f"| | before (MNIST only) | after (+{learned} corrections x {args.repeat}) |")
    print("| --- | --- | --- |")
    print(f"| the hand, {len(measure)} other drawings, read right | {before:.1%} | {after:.1%} |")
    print(f"| MNIST test accuracy | {tests[0]:.2%} | {tests[1]:.2%} |")


if __name__ == "__main__":
    main()
