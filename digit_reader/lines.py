"""Read a number whole: the line reader's answer, for digits no cut separates.

Where digits touch or overlap (a 9's tail under the next 8, loops crossing), no cut of
the ink gives the network whole digits, and reading.py's best partition goes wrong. The
line reader (pipeline/lines.py) reads the number's whole line of ink instead
(normalize.Line: 32 rows, any width) and answers, for each 4 columns of it, the
probabilities of the ten digits and of BLANK (no digit ends here): CTC's way of reading
a sequence without being told where its parts are. Its best path, with repeats merged and
blanks dropped, is its reading.

`line_reading(line, probabilities)` turns that into digits with boxes, as reading.py
answers: each digit's box spans the columns where the reader saw it, out to halfway to
its neighbours, and its probabilities are those of its surest column. Which of the two
readings a picture gets, reading.py decides (`chosen_reading`).

Ships inside the registered model, with normalize.py.
"""

import numpy as np

from digit_reader.normalize import JOINED_ASPECT, LINE_HEIGHT, LINE_MARGIN, Digit, Line, to_mnist

BLANK = 10  # the line reader's 11th answer: no digit ends in these columns
STRIDE = 4  # columns of the line per answer of the line reader
WIDTH = 256  # columns of its training lines (pipeline/lines.py; wider ones, rare, are cut)
EMPTY_AFTER = 32  # empty columns after a line, in training and when reading


def may_hold_joined_digits(line: Line) -> bool:
    """Whether the line is wide enough to hold digits joined: wider than JOINED_ASPECT
    times its height, as normalize.py cuts strokes. (Where it is not, the line reader
    is not asked: it read 27 of MNIST's 10,000 test digits as two.)"""
    width = line.pixels.shape[1] - 2 * LINE_MARGIN
    return width > JOINED_ASPECT * (LINE_HEIGHT - 2 * LINE_MARGIN)


def padded(line: Line) -> np.ndarray:
    """The line as a batch of one for the line reader: (1, 32, width, 1) uint8, with
    EMPTY_AFTER empty columns after it, as every line had in training (the network
    learnt what the end of a line looks like: read without them, a reader trained on
    lines padded to WIDTH read 82% of its training lines right, not 92%), its width a
    multiple of STRIDE."""
    height, width = line.pixels.shape
    batch = np.zeros((1, height, -(-(width + EMPTY_AFTER) // STRIDE) * STRIDE, 1), np.uint8)
    batch[0, :, :width, 0] = line.pixels
    return batch


def best_path(answers: np.ndarray) -> list[tuple[int, int, int]]:
    """The digits of the likeliest path, each (digit, first answer, last answer), from
    the answers' probabilities (or logits: only which answer is largest counts)."""
    best = answers.argmax(axis=1)
    runs: list[tuple[int, int, int]] = []
    for t, answer in enumerate(best):
        if answer == BLANK:
            continue
        if runs and runs[-1][0] == answer and runs[-1][2] == t - 1:
            runs[-1] = (answer, runs[-1][1], t)
        else:
            runs.append((int(answer), t, t))
    return runs


def line_reading(line: Line, probabilities: np.ndarray) -> list[tuple[Digit, np.ndarray]]:
    """The digits of the line reader's best path, left to right, each with a box in the
    picture and the probabilities of its 10 digits."""
    runs = best_path(probabilities)
    ink = line.pixels.astype(np.float32) / 255
    columns = np.flatnonzero(ink.max(axis=0) > 0.1)
    if not runs or not len(columns):
        return []
    # Each digit's columns: halfway to its neighbours' answers, out to the ink at the ends.
    edges = [int(columns[0])]
    for (_, _, last), (_, first, _) in zip(runs, runs[1:], strict=False):
        edges.append(STRIDE * (last + 1 + first) // 2)
    edges.append(int(columns[-1]) + 1)
    reading = []
    for (_, first, last), left, right in zip(runs, edges, edges[1:], strict=False):
        surest = first + int(probabilities[first : last + 1, :BLANK].max(axis=1).argmax())
        digit_probabilities = probabilities[surest, :BLANK] / probabilities[surest, :BLANK].sum()
        reading.append((_digit(line, ink, left, max(right, left + 1)), digit_probabilities))
    return reading


def _digit(line: Line, ink: np.ndarray, left: int, right: int) -> Digit:
    """The digit in columns [left, right) of the line, with its box in the picture."""
    crop = ink[:, left:right]
    rows = np.flatnonzero(crop.max(axis=1) > 0.1)
    top, bottom = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, crop.shape[0])
    crop = crop[top:bottom]
    pixels = to_mnist(crop, crop > 0.1, max(crop.shape))
    x = line.x + (left - LINE_MARGIN) / line.scale
    y = line.y + (top - LINE_MARGIN) / line.scale
    width, height = (right - left) / line.scale, (bottom - top) / line.scale
    return Digit(round(max(x, 0)), round(max(y, 0)), round(width), round(height), pixels)
