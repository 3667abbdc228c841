"""Stage 3: what the reader cuts out of written numbers, for the network to learn from.

The reader (digit_reader/normalize.py) cuts a number's ink into candidate digits and lets the
network choose among the ways to read them. Where digits touch or overlap, most of its
candidates are not one whole digit: a piece of one, two joined, one with a neighbour's
tail. A network that knows only MNIST's digits reads such a piece as a digit, often with
confidence, and the reading goes wrong. So the network gets an 11th answer, NOT_A_DIGIT,
learnt from these candidates.

This stage writes numbers of MNIST *training* digits (the training split only, never the
validation or test digits), written tight, touching and overlapping as in fast writing
(synthetic/numbers.py), runs the reader's own `candidates` on each, and keeps every
candidate that is one whole digit (labelled with it: digits as the reader cuts them,
with a bit of a neighbour now and then) and every candidate that covers no digit well
(labelled NOT_A_DIGIT). Between the two (an unclear share of a digit) nothing is kept.

Outputs data/pieces.npz: `x` (N, 28, 28, 1) uint8 and `y` (N,), as the splits.
"""

import numpy as np
from PIL import Image

from core.params import load_params
from core.paths import PIECES_PATH, PREPARED_DIR, save_arrays, written_whole
from digit_reader.normalize import NOT_A_DIGIT, candidates
from synthetic.numbers import compose, compose_touching, mnist_digit, picture_of

WHOLE = 0.8  # a candidate whose box overlaps a digit's this much (IoU) is that digit
PIECE = 0.5  # one that overlaps no digit's box this much is not one whole digit


def number_of(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator):
    """A number of 2 to 5 training digits written fast (touching or overlapping) or
    tight, large or small, with a thin pen now and then, as a picture the reader takes;
    with each digit's label and box."""
    height = float(np.exp(rng.uniform(np.log(20), np.log(130))))
    pen = rng.uniform(1.0, 2.5) if rng.random() < 0.3 else None
    chosen = rng.integers(len(labels), size=int(rng.integers(2, 6)))
    inks = [
        mnist_digit(images[i, ..., 0], max(12, round(height * rng.uniform(0.85, 1.1))), pen)
        for i in chosen
    ]
    if rng.random() < 0.65:
        ink, boxes = compose_touching(inks, height, (0.0, 0.15), 0.04, rng)
    else:
        ink, boxes = compose(inks, height, rng.uniform(-0.05, 0.35), 0.04, rng)
    return picture_of(ink), labels[chosen], boxes


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two boxes (x, y, width, height)."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    shared = width * height
    return shared / (a[2] * a[3] + b[2] * b[3] - shared)


def pieces_of(picture: Image.Image, labels: np.ndarray, boxes) -> tuple[list, list]:
    """The reader's candidates of one number that are clearly one digit or clearly not."""
    pixels, answers = [], []
    for digit in candidates(picture).digits:
        box = (digit.x, digit.y, digit.width, digit.height)
        overlaps = [overlap(box, truth) for truth in boxes]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= WHOLE:
            answers.append(int(labels[best]))
        elif overlaps[best] < PIECE:
            answers.append(NOT_A_DIGIT)
        else:
            continue
        pixels.append(digit.pixels)
    return pixels, answers


def make_pieces(
    images: np.ndarray, labels: np.ndarray, numbers: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The candidates of `numbers` numbers, the same for the same seed."""
    rng = np.random.default_rng(seed)
    pixels, answers = [], []
    for _ in range(numbers):
        more_pixels, more_answers = pieces_of(*number_of(images, labels, rng))
        pixels += more_pixels
        answers += more_answers
    x = np.stack(pixels)[..., np.newaxis] if pixels else np.zeros((0, 28, 28, 1), np.uint8)
    return x, np.array(answers, dtype=np.uint8)


def main() -> None:
    params = load_params()["pieces"]
    with np.load(PREPARED_DIR / "train.npz") as train:
        x, y = make_pieces(train["x"], train["y"], params["numbers"], params["seed"])
    with written_whole(PIECES_PATH) as path:
        save_arrays(path, x=x, y=y)
    apart = int(np.sum(y == NOT_A_DIGIT))
    print(
        f"pieces: {len(y)} candidates of {params['numbers']} numbers: {len(y) - apart} "
        f"whole digits, {apart} not one whole digit"
    )


if __name__ == "__main__":
    from core.errors import command

    command(main)
