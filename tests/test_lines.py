"""Reading a number whole (digit_reader/lines.py) and choosing between the two readings
(digit_reader/reading.py: chosen_reading), with line-reader answers made by hand: what
the rules do does not depend on how well a line reader was trained. (The trained one is
measured by `evaluate` on the benchmark's `touching` set, and `test_pipeline` trains one.)
"""

import itertools

import numpy as np
import pytest
from PIL import Image

from digit_reader.lines import (
    BLANK,
    EMPTY_AFTER,
    STRIDE,
    WIDTH,
    best_path,
    line_reading,
    may_hold_joined_digits,
    padded,
)
from digit_reader.normalize import LINE_HEIGHT, candidates
from digit_reader.reading import (
    LINE_MARGIN_LOG,
    NARROW_MARGIN_LOG,
    asks_line_reader,
    chosen_reading,
    log_likelihood,
)
from pipeline.lines import batches_by_width
from pipeline.preprocess import IMAGES_MAGIC, read_idx

from pictures import drawing, written_fast


@pytest.fixture(scope="module")
def five_nine_eight(mirror) -> Image.Image:
    """ "598" in one stroke, the 8 written over the foot of the 9's tail."""
    images = read_idx(mirror / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, (10_000, 28, 28))
    return written_fast(images, [8038, 6409, 9116], overlap=0.15)


def answers(frames: int, digits: dict[int, int], sure: float = 0.98) -> np.ndarray:
    """Line-reader probabilities: BLANK everywhere except the given frames' digits."""
    probabilities = np.full((frames, BLANK + 1), (1 - sure) / BLANK)
    probabilities[:, BLANK] = sure
    for frame, digit in digits.items():
        probabilities[frame] = (1 - sure) / BLANK
        probabilities[frame, digit] = sure
    return probabilities


def test_the_line_is_the_numbers_ink_at_32_rows_and_maps_back(five_nine_eight):
    page = candidates(five_nine_eight)
    line = page.line
    assert line.pixels.shape[0] == LINE_HEIGHT and line.pixels.dtype == np.uint8
    assert page.strokes == 1  # one stroke: no cut parts these digits for sure
    ink = np.asarray(five_nine_eight) < 128
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    # The line's first and last inked columns are the picture's, through x and scale.
    inked = np.flatnonzero(line.pixels.max(axis=0) > 25)
    assert line.x + (inked[0] - 2) / line.scale == pytest.approx(cols[0], abs=2 / line.scale)
    assert line.x + (inked[-1] - 2) / line.scale == pytest.approx(cols[-1], abs=2 / line.scale)
    assert line.scale == pytest.approx((LINE_HEIGHT - 4) / (rows[-1] - rows[0] + 1), rel=0.05)
    # The reader gets it with empty columns after it, as it was trained.
    batch = padded(line)
    assert batch.shape[0] == 1 and batch.shape[2] % STRIDE == 0
    assert batch.shape[2] >= line.pixels.shape[1] + 32
    assert np.array_equal(batch[0, :, : line.pixels.shape[1], 0], line.pixels)


def test_a_single_digit_read_surely_is_not_asked_of_the_line_reader(five_nine_eight):
    """Only a line wider than a digit, or a narrow one whose cut reading is unsure,
    costs the second network (a sure single digit may be read as two by it)."""
    page = candidates(five_nine_eight)
    assert may_hold_joined_digits(page.line)
    assert asks_line_reader(page.line, [(page.digits[0], np.eye(10)[5])])
    for digit in (7, 0):
        single = candidates(drawing(str(digit)))
        assert not may_hold_joined_digits(single.line)
        sure, unsure = 0.995 * np.eye(10)[digit], 0.6 * np.eye(10)[digit]
        assert not asks_line_reader(single.line, [(single.digits[0], sure)])
        assert asks_line_reader(single.line, [(single.digits[0], unsure)])
    assert not asks_line_reader(None, [])


def test_a_narrow_line_is_read_as_two_digits_only_when_the_line_reader_is_much_surer():
    """Two digits written into each other in a box no wider than tall ("13"): the line
    reader's "13" replaces an unsure cut "7" where it is e^10 likelier, not e^2."""
    page = candidates(drawing("7"))
    frames = page.line.pixels.shape[1] // STRIDE
    cut = [(page.digits[0], 0.6 * np.eye(10)[7])]
    for sure, read in ((0.9, [7]), (0.999, [1, 3])):
        probabilities = answers(frames, {frames // 3: 1, 2 * frames // 3: 3}, sure)
        margin = log_likelihood(probabilities, [1, 3]) - log_likelihood(probabilities, [7])
        assert LINE_MARGIN_LOG < margin  # a wide line would be read "13" either way
        assert (margin >= NARROW_MARGIN_LOG) == (read == [1, 3])
        reading = chosen_reading(page.line, page.strokes, cut, probabilities)
        assert [int(p.argmax()) for _, p in reading] == read


def test_specks_are_not_on_the_line():
    image = drawing("42", size=(800, 300))
    speckled = image.copy()
    speckled.paste(0, (700, 20, 704, 24))  # a speck far to the right
    assert candidates(speckled).line.pixels.shape == candidates(image).line.pixels.shape


def test_the_ctc_likelihood_sums_every_path_of_the_digits():
    """The forward algorithm against all 3^4 paths of a 4-frame line over {1, 2, BLANK}."""
    rng = np.random.default_rng(0)
    probabilities = rng.random((4, BLANK + 1))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    for digits in ([], [1], [1, 1], [1, 2], [2, 1, 2]):
        total = 0.0
        for path in itertools.product([1, 2, BLANK], repeat=4):
            merged = [a for i, a in enumerate(path) if i == 0 or a != path[i - 1]]
            if [a for a in merged if a != BLANK] == digits:
                total += np.prod([probabilities[t, a] for t, a in enumerate(path)])
        assert log_likelihood(probabilities, digits) == pytest.approx(np.log(total))


def test_training_batches_hold_each_line_once_cropped_to_their_widest():
    """Each line once an epoch, in batches of about one width, each line with empty
    columns after it, as when it is read."""
    rng = np.random.default_rng(0)
    count, size = 800, 16
    widths = rng.integers(12, WIDTH + 1, size=count).astype(np.int32)
    lines = {
        "x": np.zeros((count, LINE_HEIGHT, WIDTH, 1), np.uint8),
        "widths": widths,
        "targets": np.arange(count, dtype=np.int32)[:, None],  # which line it is
        "lengths": np.ones(count, np.int32),
    }
    batches = list(batches_by_width(lines, size, rng))
    assert len(batches) == -(-count // size)  # as many as fit_lines schedules
    seen, columns = [], 0
    for x, targets, _, batch_widths in batches:
        seen += list(targets[:, 0])
        assert x.shape[2] % STRIDE == 0
        assert x.shape[2] >= np.minimum(batch_widths + EMPTY_AFTER, WIDTH).max()
        assert x.shape[2] < batch_widths.max() + EMPTY_AFTER + STRIDE
        columns += x.shape[2] * len(x)
    assert sorted(seen) == list(range(count))
    # Batches of lines in random order, each cropped to its widest, cost far more.
    at_random = np.array_split(rng.permutation(count), len(batches))
    random_columns = sum(min(WIDTH, widths[b].max() + EMPTY_AFTER) * len(b) for b in at_random)
    assert columns < 0.8 * random_columns


def test_the_best_path_merges_repeats_and_drops_blanks():
    probabilities = answers(12, {1: 5, 2: 5, 5: 9, 8: 8, 10: 8})
    runs = best_path(probabilities)
    assert [digit for digit, _, _ in runs] == [5, 9, 8, 8]  # a BLANK between two 8s
    assert runs[0][1:] == (1, 2)
    assert best_path(np.log(probabilities)) == runs  # logits read the same


def test_a_sure_line_reader_reads_digits_joined_in_one_stroke(five_nine_eight):
    """The cut reading says "58" (the 9 lost in the 8's loop); the line reader, sure of
    "598", reads the one stroke as three digits, boxes left to right in the picture."""
    page = candidates(five_nine_eight)
    frames = page.line.pixels.shape[1] // STRIDE
    probabilities = answers(frames, {frames // 6: 5, frames // 2: 9, 5 * frames // 6: 8})
    cut = [(page.digits[0], np.eye(10)[5]), (page.digits[-1], np.eye(10)[8])]
    reading = chosen_reading(page.line, page.strokes, cut, probabilities)
    assert [int(p.argmax()) for _, p in reading] == [5, 9, 8]
    boxes = [digit for digit, _ in reading]
    assert [box.x for box in boxes] == sorted(box.x for box in boxes)
    assert boxes[0].x >= 0 and boxes[-1].x + boxes[-1].width <= five_nine_eight.width + 1
    assert all(box.pixels.shape == (28, 28) and box.pixels.max() == 255 for box in boxes)
    assert all(p.sum() == pytest.approx(1) for _, p in reading)


def test_the_cut_reading_stays_where_the_digits_are_apart_or_the_line_reader_unsure(
    five_nine_eight,
):
    page = candidates(five_nine_eight)
    frames = page.line.pixels.shape[1] // STRIDE
    sure = answers(frames, {frames // 6: 5, frames // 2: 9, 5 * frames // 6: 8})
    cut = [(page.digits[0], np.eye(10)[5]), (page.digits[-1], np.eye(10)[8])]
    # Three strokes for three digits: the cuts did not have to part anything.
    assert chosen_reading(page.line, 3, cut, sure) is cut
    # The line reader torn between "598" and "58": not surely better.
    torn = sure.copy()
    torn[frames // 2] = (1 - 0.5) / BLANK
    torn[frames // 2, 9], torn[frames // 2, BLANK] = 0.45, 0.5
    assert chosen_reading(page.line, page.strokes, cut, torn) is cut


def test_line_reading_of_no_digits_is_empty(five_nine_eight):
    page = candidates(five_nine_eight)
    nothing = answers(page.line.pixels.shape[1] // STRIDE, {})
    assert line_reading(page.line, nothing) == []
