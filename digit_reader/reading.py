"""Read a picture's digits: of the ways to cut its ink into digits, the one that reads best.

`normalize.py` finds the candidates (every run of the ink's parts that could be
one digit, normalised as MNIST's digits). `best_reading(page, probabilities)` takes the
network's probabilities for them and keeps the partition of the parts into digits that
reads best: the largest sum, over its digits, of the log-probability of the digit read
(of the digits alone: what the network gives its 11th answer, NOT_A_DIGIT, counts
against a candidate), plus a prior on its shape (no digit is much wider than tall, nor
much lower than the tallest, nor standing above its neighbours' line, nor made of parts
far apart), minus a cost for each boundary that separates parts lying one above the
other or cuts a stroke. A small part may be left out as a speck. Dynamic programming
finds the best partition exactly. docs/reading.md tells why.

`chosen_reading` then weighs it against the line reader's (lines.py), which reads the
number whole and does best where digits are joined.

Ships inside the registered model, with normalize.py.
"""

import numpy as np
from PIL import Image

from digit_reader.lines import BLANK, Line, best_path, line_reading, may_hold_joined_digits
from digit_reader.normalize import SMALL_HEIGHT, Digit, Page, candidates

# The prior of one digit, in log-probability units (tuned on bench/reading.py).
WIDE_ASPECT, WIDE_COST = 1.4, 2.0  # wider than tall by more than this costs, per unit
SMALL_COST = 6.0  # lower than SMALL_HEIGHT of the tallest costs, per unit
OVERLAP_FREE, OVERLAP_COST = 0.3, 2.0  # parts one above the other: splitting them costs
GAP_FREE, GAP_COST = 0.05, 5.0  # parts further apart than this share of the tallest:
# reading them as one digit costs, per unit
FLOAT_FREE, FLOAT_COST = 0.15, 4.0  # a digit whose bottom stays above its neighbours'
# by more than this share of the tallest costs, per unit
CUT_COST = 0.25  # reading the pieces of one cut stroke as different digits costs
DIGIT_BONUS = 0.5  # added per digit: weighs a reading of more digits against fewer
DROP_COST = 0.5  # leaving out a small part as a speck costs
# The line reader's reading replaces the cut one only where it finds it this much
# likelier (in log-probability: e^2, about 7 times; tuned on bench/reading.py's sets) ...
LINE_MARGIN_LOG = 2.0
# On a line no wider than a digit (lines.py: may_hold_joined_digits), one digit or two
# written into each other ("13" in a box no wider than tall), the line reader is asked
# only where the cut reading holds a digit less sure than this (2.7% of MNIST's test
# digits) ...
NARROW_SURE = 0.99
# ... and its reading wins only where this much likelier (e^10): so asked, it reads none
# of MNIST's 10,000 test digits as two (asked of every such line with e^2, it read 27).
NARROW_MARGIN_LOG = 10.0


def best_reading(page: Page, probabilities: np.ndarray) -> list[tuple[Digit, np.ndarray]]:
    """The digits of the most likely reading, left to right, each with its probabilities."""
    if not page.digits:  # no ink: nothing to read
        return []
    index = {
        (*run, *ends): i for i, (run, ends) in enumerate(zip(page.runs, page.ends, strict=True))
    }
    # best[k][w]: the best score of parts [0, k) with boundary k cut the w-th way, and
    # choice[k][w] the (start, way) where its last digit starts (None: a speck before k).
    best = [np.full(len(ways), -np.inf) for ways in page.crossings]
    best[0][0] = 0.0
    choice: list[list] = [[None] * len(ways) for ways in page.crossings]
    ending: dict[int, list[int]] = {}  # the candidates ending at each part
    for i, (_, stop) in enumerate(page.runs):
        ending.setdefault(stop, []).append(i)
    for stop in range(1, page.parts + 1):
        for i in ending.get(stop, []):
            (start, _), (left, right) = page.runs[i], page.ends[i]
            if best[start][left] == -np.inf:
                continue
            score = best[start][left] + _score(page, i, probabilities[i])
            score -= _split_cost(page, stop, right)
            if score > best[stop][right]:
                best[stop][right], choice[stop][right] = score, (start, left)
        # Or the part before stop is a speck of dirt, if it is small.
        speck = page.digits[index[stop - 1, stop, 0, 0]]
        small = speck.height < SMALL_HEIGHT * page.tallest
        if small and best[stop - 1][0] - DROP_COST > best[stop][0]:
            best[stop][0], choice[stop][0] = best[stop - 1][0] - DROP_COST, "speck"
    reading, stop, way = [], page.parts, 0
    while stop > 0:
        if choice[stop][way] == "speck":
            stop, way = stop - 1, 0
            continue
        start, left = choice[stop][way]
        i = index[start, stop, left, way]
        reading.append((page.digits[i], probabilities[i]))
        stop, way = start, left
    return reading[::-1]


def _score(page: Page, i: int, probabilities: np.ndarray) -> float:
    """How likely candidate i is one digit: the log-probability of the digit the network
    reads, plus priors on its shape, in the same units."""
    (start, stop), digit = page.runs[i], page.digits[i]
    score = float(np.log(max(probabilities.max(), 1e-9))) + DIGIT_BONUS
    score -= WIDE_COST * max(0.0, digit.width / digit.height - WIDE_ASPECT)
    score -= SMALL_COST * max(0.0, SMALL_HEIGHT - digit.height / page.tallest)
    score -= FLOAT_COST * max(0.0, _float(page, start, stop) - FLOAT_FREE)
    score -= GAP_COST * sum(max(0.0, gap - GAP_FREE) for gap in page.gaps[start : stop - 1])
    return score


def _split_cost(page: Page, stop: int, way: int) -> float:
    """The cost of a digit boundary after part stop - 1, cut the given way: high where
    the next part lies above or below it, or where the boundary cuts a stroke (the more,
    the more it crosses)."""
    if stop == page.parts:
        return 0.0
    share, crossed = page.overlaps[stop - 1], page.crossings[stop][way]
    return OVERLAP_COST * max(0.0, share - OVERLAP_FREE) + CUT_COST * crossed


def find_digits(image: Image.Image, classify) -> list[tuple[Digit, np.ndarray]]:
    """The digits of one picture with their probabilities; classify: batch -> probabilities."""
    page = candidates(image)
    probabilities = np.asarray(classify(page.pixels)) if page.digits else np.zeros((0, 10))
    return best_reading(page, probabilities)


def _float(page: Page, start: int, stop: int) -> float:
    """How far the bottom of parts [start, stop) stays above that of the parts beside
    them, as a share of the tallest: digits stand on one line, the bar of an open 4 or
    the flag of a 5 do not."""
    beside = page.bottoms[max(0, start - 1) : start] + page.bottoms[stop : stop + 1]
    if not beside:
        return 0.0
    return (max(beside) - max(page.bottoms[start:stop])) / page.tallest


def asks_line_reader(line: Line | None, reading: list[tuple[Digit, np.ndarray]]) -> bool:
    """Whether the line reader is asked at all: of a line wide enough to hold digits
    joined, or of a narrow one whose cut reading is unsure of a digit (a single digit
    read surely, most pictures sent one at a time, costs no second network)."""
    if line is None:
        return False
    return may_hold_joined_digits(line) or any(p.max() < NARROW_SURE for _, p in reading)


def chosen_reading(
    line: Line, strokes: int, reading: list[tuple[Digit, np.ndarray]], probabilities: np.ndarray
) -> list[tuple[Digit, np.ndarray]]:
    """The cut reading (reading.py), or the line reader's where it reads more digits
    than the number has strokes (so some stroke holds digits joined, which cuts read
    worst) and finds its own reading LINE_MARGIN_LOG likelier than the cut one
    (NARROW_MARGIN_LOG on a line no wider than a digit)."""
    whole = [digit for digit, _, _ in best_path(probabilities)]
    cut = [int(p.argmax()) for _, p in reading]
    if whole == cut or len(whole) <= strokes:
        return reading
    margin = LINE_MARGIN_LOG if may_hold_joined_digits(line) else NARROW_MARGIN_LOG
    if log_likelihood(probabilities, whole) - log_likelihood(probabilities, cut) < margin:
        return reading
    return line_reading(line, probabilities)


def log_likelihood(probabilities: np.ndarray, digits: list[int]) -> float:
    """The log-probability that the line reader reads exactly these digits, over every
    path that does (CTC's forward algorithm)."""
    # The path's states: a BLANK before, between and after the digits.
    states = np.full(2 * len(digits) + 1, BLANK)
    states[1::2] = digits
    # A path may skip a BLANK between two different digits.
    skip = np.zeros(len(states), dtype=bool)
    skip[3::2] = states[3::2] != states[1:-2:2]
    logs = np.log(np.maximum(probabilities, 1e-30))
    alpha = np.full(len(states), -np.inf)
    alpha[:2] = logs[0, states[:2]]
    for t in range(1, len(logs)):
        before = np.concatenate([[-np.inf, -np.inf], alpha])  # alpha shifted by 1 and 2
        step, jump = before[1:-1], np.where(skip, before[:-2], -np.inf)
        alpha = np.logaddexp(np.logaddexp(alpha, step), jump) + logs[t, states]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if len(states) > 1 else alpha[-1])
