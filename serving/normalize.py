"""Find the handwritten digits in a picture and make each one look like an MNIST digit.

MNIST's digits were made so: each digit's ink cropped, scaled so that its longer side is
20 pixels (keeping the aspect ratio, anti-aliased), and placed in a 28x28 field with its
centre of mass at the centre; light ink on black. This module does the same to any
picture, so that the model sees drawn digits the way it saw its training data. It is the
only definition of that normalisation and of digit finding: it ships inside the
registered model.

Which strokes form one digit is decided with the network, in two steps:

1. `candidates(image)` cuts the ink into parts, left to right: its connected strokes,
   and, where a stroke is too wide for one digit (touching digits), the pieces between
   the cuts worth trying. Every run of neighbouring parts that could be one digit is a
   candidate, normalised to 28x28 (no network yet, so many pictures make one batch).
2. `best_reading(page, probabilities)` takes the network's probabilities for the
   candidates and keeps the partition of the parts into digits that reads best: the
   largest sum, over its digits, of the log-probability of the digit read, plus a prior
   on its shape (no digit is much wider than tall, nor much lower than the tallest, nor
   standing above its neighbours' line, nor made of parts far apart), minus a cost for
   each boundary that separates parts lying one above the other or cuts a stroke. A
   small part may be left out as a speck. Dynamic programming finds the best partition
   exactly. docs/reading.md tells why.
"""

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

MIN_CONTRAST = 0.2  # weaker ink than this (0-1) is paper texture or noise: no digit
INK_THRESHOLD = 0.1  # of the strongest ink: MNIST's digits then span exactly 20 pixels
SPECK_AREA = 0.02  # strokes smaller than this part of the largest stroke's area ...
SPECK_SIZE = 0.04  # ... or than this part of the picture's shorter side are specks
FRAGMENT = 0.15  # a stroke with less ink than this share of a neighbour a pixel away is part of it
RULE_LENGTH = 0.8  # ink running across this share of a picture is a ruled line
TARGET_STROKE = 2.5  # MNIST-like stroke width, in pixels of the 20-pixel box

MAX_PARTS = 4  # parts one digit may have: the strokes of a 4 or a 5, pieces of a cut
MAX_ASPECT = 1.6  # a run of parts wider than this times its height is never one digit
MIN_CUT_ASPECT = 1.0  # strokes wider than this times their height are tried cut apart
MAX_CROSSINGS = 2  # ... where a column crosses the ink no more than this many times
# The prior of one digit, in log-probability units (tuned on bench/reading.py).
WIDE_ASPECT, WIDE_COST = 1.4, 2.0  # wider than tall by more than this costs, per unit
SMALL_HEIGHT, SMALL_COST = 0.5, 6.0  # lower than this share of the tallest costs, per unit
OVERLAP_FREE, OVERLAP_COST = 0.3, 2.0  # parts one above the other: splitting them costs
GAP_FREE, GAP_COST = 0.05, 5.0  # parts further apart than this share of the tallest:
# reading them as one digit costs, per unit
FLOAT_FREE, FLOAT_COST = 0.15, 4.0  # a digit whose bottom stays above its neighbours'
# by more than this share of the tallest costs, per unit
CUT_COST = 0.5  # reading the pieces of one cut stroke as different digits costs
DIGIT_BONUS = 0.5  # added per digit: weighs a reading of more digits against fewer
DROP_COST = 0.5  # leaving out a small part as a speck costs


@dataclass(frozen=True)
class Digit:
    """One digit found in a picture: its box in picture pixels and its 28x28 MNIST form."""

    x: int
    y: int
    width: int
    height: int
    pixels: np.ndarray  # (28, 28) uint8, light ink on black


@dataclass
class Page:
    """A picture cut into parts, and the candidate digits (runs of parts) to classify."""

    parts: int = 0
    tallest: int = 1  # height of the tallest part, in picture pixels
    # Between each part and the next (0 after the last):
    gaps: list[float] = field(default_factory=list)  # empty columns, / tallest
    overlaps: list[float] = field(default_factory=list)  # shared columns, / the narrower
    cuts: list[int] = field(default_factory=list)  # strokes crossed, if cut apart, else 0
    bottoms: list[int] = field(default_factory=list)  # of each part, in picture pixels
    # The candidates:
    runs: list[tuple[int, int]] = field(default_factory=list)  # parts [start, stop)
    digits: list[Digit] = field(default_factory=list)  # one per run

    @property
    def pixels(self) -> np.ndarray:
        """The candidates as a batch for the network: (n, 28, 28, 1) uint8."""
        if not self.digits:
            return np.zeros((0, 28, 28, 1), dtype=np.uint8)
        return np.stack([d.pixels for d in self.digits])[..., np.newaxis]


def ink_of(image: Image.Image) -> np.ndarray:
    """Ink strength in [0, 1] per pixel, whatever the colours; 0 is background."""
    image = ImageOps.exif_transpose(image)
    if "A" in image.getbands() or "transparency" in image.info:
        # A transparent picture: what is painted is the ink.
        return np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float32) / 255
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    light_paper = float(np.median(border)) > 0.5  # the paper is what surrounds the digits
    ink = _paper(gray, light_paper) - gray
    return np.clip(ink if light_paper else -ink, 0, 1)


def on_paper(image: Image.Image) -> Image.Image:
    """The picture as the model sees it: upright (EXIF), its ink dark on white paper."""
    return Image.fromarray(np.round(255 * (1 - ink_of(image))).astype(np.uint8))


def _paper(gray: np.ndarray, light: bool) -> np.ndarray:
    """The paper's brightness at each pixel: a plane fitted to the pixels that are not
    ink, so that a photo lit unevenly has no shadow taken for ink."""
    height, width = gray.shape
    step = max(1, int(np.sqrt(gray.size / 5_000)))  # a sample is enough for a plane
    y, x = np.mgrid[0:height:step, 0:width:step]
    y, x = y.ravel() / height, x.ravel() / width
    sample = gray[::step, ::step].ravel()
    terms = np.stack([np.ones_like(x), x, y], axis=1)
    paper = np.ones_like(sample, dtype=bool)
    for _ in range(3):  # fit, leave out what is darker (or lighter) than paper, refit
        coefficients = np.linalg.lstsq(terms[paper], sample[paper], rcond=None)[0]
        residual = sample - terms @ coefficients
        paper = residual > -0.05 if light else residual < 0.05
        if paper.sum() < 3:
            break
    rows, cols = np.arange(height)[:, None] / height, np.arange(width)[None, :] / width
    a, b, c = coefficients
    return (a + b * cols + c * rows).astype(np.float32)


def candidates(image: Image.Image) -> Page:
    """The parts of a picture's ink and every run of them that could be one digit."""
    ink = ink_of(image)
    strongest = float(ink.max(initial=0))
    if strongest < MIN_CONTRAST:
        return Page()
    ink = ink / strongest
    parts = _parts(ink)
    tallest = max(_length(rows) for (rows, _), _, _ in parts) if parts else 1
    pairs = list(zip(parts, parts[1:], strict=False))
    page = Page(
        parts=len(parts),
        tallest=tallest,
        gaps=[max(0, b[0][1].start - a[0][1].stop) / tallest for a, b in pairs] + [0.0],
        overlaps=[_overlap(a[0][1], b[0][1]) for a, b in pairs] + [0.0],
        cuts=[crossed for _, _, crossed in parts],
        bottoms=[rows.stop for (rows, _), _, _ in parts],
    )
    for start in range(len(parts)):
        for stop in range(start + 1, min(start + MAX_PARTS, len(parts)) + 1):
            run = parts[start:stop]
            rows, cols = _union(box for box, _, _ in run)
            if stop - start > 1 and _length(cols) > MAX_ASPECT * _length(rows):
                continue
            mask = np.zeros((_length(rows), _length(cols)), dtype=bool)
            for (part_rows, part_cols), part_mask, _ in run:
                top, left = part_rows.start - rows.start, part_cols.start - cols.start
                mask[top : top + part_mask.shape[0], left : left + part_mask.shape[1]] |= part_mask
            page.runs.append((start, stop))
            page.digits.append(_digit(ink, rows, cols, mask))
    return page


def best_reading(page: Page, probabilities: np.ndarray) -> list[tuple[Digit, np.ndarray]]:
    """The digits of the most likely reading, left to right, each with its probabilities."""
    index = {run: i for i, run in enumerate(page.runs)}
    best = [0.0] + [-np.inf] * page.parts  # best[k]: the best score of parts [0, k)
    choice: list[int | None] = [0] * (page.parts + 1)  # where its last digit starts
    for stop in range(1, page.parts + 1):
        for start in range(max(0, stop - MAX_PARTS), stop):
            if (start, stop) in index:
                i = index[start, stop]
                score = best[start] + _score(page, i, probabilities[i]) - _split_cost(page, stop)
                if score > best[stop]:
                    best[stop], choice[stop] = score, start
        # Or the part before stop is a speck of dirt, if it is small.
        speck = page.digits[index[stop - 1, stop]]
        if speck.height < SMALL_HEIGHT * page.tallest and best[stop - 1] - DROP_COST > best[stop]:
            best[stop], choice[stop] = best[stop - 1] - DROP_COST, None
    reading, stop = [], page.parts
    while stop > 0:
        if choice[stop] is None:  # a speck
            stop -= 1
            continue
        i = index[choice[stop], stop]
        reading.append((page.digits[i], probabilities[i]))
        stop = choice[stop]
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


def _split_cost(page: Page, stop: int) -> float:
    """The cost of a digit boundary after part stop - 1: high where the next part lies
    above or below it, or where the boundary cuts a stroke (the more, the more it crosses)."""
    share, crossed = page.overlaps[stop - 1], page.cuts[stop - 1]
    return OVERLAP_COST * max(0.0, share - OVERLAP_FREE) + CUT_COST * crossed


def find_digits(image: Image.Image, classify) -> list[tuple[Digit, np.ndarray]]:
    """The digits of one picture with their probabilities; classify: batch -> probabilities."""
    page = candidates(image)
    if not page.digits:
        return []
    return best_reading(page, np.asarray(classify(page.pixels)))


def to_mnist(crop: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """A digit's ink as a 28x28 uint8 MNIST digit; size is the longer side of its strokes."""
    scale = 20 / size
    # Strokes drawn thin on a big canvas would be hair-thin at 20 pixels: thicken them.
    stroke = 2 * mask.sum() / max(_boundary(mask).sum(), 1)
    grow = int(round((TARGET_STROKE / scale - stroke) / 2))
    if grow > 0:
        # A square maximum filter: separable, so fast even for wide pens on big canvases;
        # its corners vanish in the scaling down to 20 pixels.
        crop = ndimage.maximum_filter(np.pad(crop, grow), size=2 * grow + 1)
        scale = 20 / (size + 2 * grow)
    height, width = crop.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size != (width, height):
        resized = Image.fromarray(crop.astype(np.float32), "F").resize(size, Image.BILINEAR)
        crop = np.asarray(resized)
    crop = np.clip(crop / max(float(crop.max()), 1e-6), 0, 1)
    field = np.zeros((28, 28), dtype=np.float32)
    center_y, center_x = ndimage.center_of_mass(crop)
    top, left = int(round(14 - center_y)), int(round(14 - center_x))
    _paste(field, crop, top, left)
    return np.round(field * 255).astype(np.uint8)


Box = tuple[slice, slice]


def _parts(ink: np.ndarray) -> list[tuple[Box, np.ndarray, int]]:
    """The strokes that are not specks, wide ones cut, by their centres, left to right:
    (box, mask, how many times the cut after it crosses the stroke, 0 if none)."""
    labels = _strokes(_without_rules(ink > INK_THRESHOLD))
    count = int(labels.max())
    boxes = ndimage.find_objects(labels)
    areas = ndimage.sum_labels(np.ones_like(ink), labels, range(1, count + 1))
    min_size = SPECK_SIZE * min(ink.shape)
    strokes = [
        i
        for i, box in enumerate(boxes)
        if box  # None: a fragment now part of another stroke
        and areas[i] >= SPECK_AREA * areas.max()
        and max(_length(box[0]), _length(box[1])) >= min_size
    ]
    tallest = max((_length(boxes[i][0]) for i in strokes), default=1)
    parts = []
    for i in strokes:
        rows, cols = boxes[i]
        mask = labels[rows, cols] == i + 1
        # Only a stroke of a digit's height can be two digits joined.
        tall = _length(rows) >= SMALL_HEIGHT * tallest
        for left, right, crossed in _pieces(mask) if tall else [(0, _length(cols), 0)]:
            piece = mask[:, left:right]
            filled = np.flatnonzero(piece.any(axis=1))
            box = (
                slice(rows.start + filled[0], rows.start + filled[-1] + 1),
                slice(cols.start + left, cols.start + right),
            )
            parts.append((box, piece[filled[0] : filled[-1] + 1], crossed))
    return sorted(parts, key=lambda part: part[0][1].start + part[0][1].stop)


def _strokes(ink: np.ndarray) -> np.ndarray:
    """The connected strokes of the ink, labelled 1, 2, ...; a fragment a pixel away from
    a much larger stroke (the faint edge of a stroke, a skip of the pen) is part of it."""
    labels, count = ndimage.label(ink, structure=np.ones((3, 3)))
    near, _ = ndimage.label(ndimage.binary_dilation(ink), structure=np.ones((3, 3)))
    areas = ndimage.sum_labels(ink, labels, range(1, count + 1))
    groups = ndimage.maximum(near, labels, range(1, count + 1))  # the group of each stroke
    largest: dict[int, int] = {}  # group -> its largest stroke
    for stroke, group in enumerate(groups, start=1):
        if group not in largest or areas[stroke - 1] > areas[largest[group] - 1]:
            largest[group] = stroke
    relabel = np.arange(count + 1)
    for stroke, group in enumerate(groups, start=1):
        if areas[stroke - 1] < FRAGMENT * areas[largest[group] - 1]:
            relabel[stroke] = largest[group]
    return relabel[labels]


def _without_rules(ink: np.ndarray) -> np.ndarray:
    """The ink less the lines of ruled paper (rows of ink across most of a wide picture),
    with the strokes that cross a line joined again across it."""
    height, width = ink.shape
    length = int(RULE_LENGTH * width)
    if width < 100:
        return ink
    whole = ndimage.uniform_filter1d(ink.astype(np.float32), length, axis=1) > 0.999
    rule = ndimage.maximum_filter1d(whole, length, axis=1)
    if not rule.any():
        return ink
    strokes = ink & ~rule
    across = ndimage.binary_closing(strokes, structure=np.ones((7, 1)))
    return strokes | (across & rule)


def _pieces(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """Column ranges to try as separate pieces of a stroke, cut where it is thinnest,
    each with the number of times the cut after it crosses the stroke (0 after the last)."""
    height, width = mask.shape
    if width <= MIN_CUT_ASPECT * height:
        return [(0, width, 0)]
    # A cut is a column with the least ink within a narrow digit's width around it,
    # at least that far from the ends and from other cuts: the thinnest first.
    spacing = max(2, int(0.2 * height))
    column_ink = ndimage.uniform_filter1d(mask.sum(axis=0).astype(float), max(1, height // 10))
    lowest = ndimage.minimum_filter1d(column_ink, 2 * spacing + 1)
    # Digits that touch join in one stroke: a cut there crosses it once, or twice where
    # they overlap (as does a cut through the middle of a wide 0: the costlier cut).
    crossings = (np.diff(mask.astype(np.int8), axis=0) == 1).sum(axis=0) + mask[0]
    minima = [
        x
        for x in range(spacing, width - spacing)
        if column_ink[x] == lowest[x] and crossings[x] <= MAX_CROSSINGS
    ]
    # About one cut per narrow digit's width; never more pieces than a digit may have, so
    # that the whole stroke stays a candidate.
    wanted = min(MAX_PARTS - 1, max(1, round(width / (0.6 * height))))
    cuts: list[int] = []
    for x in sorted(minima, key=lambda x: (crossings[x], column_ink[x])):
        if len(cuts) < wanted and all(abs(x - c) >= spacing for c in cuts):
            cuts.append(x)
    edges = [0, *sorted(cuts), width]
    return [
        (a, b, int(crossings[b]) if b < width else 0)
        for a, b in zip(edges, edges[1:], strict=False)
        if mask[:, a:b].any()  # a fragment joined to the stroke may leave empty columns
    ]


def _overlap(a: slice, b: slice) -> float:
    """The share of the shorter span that both spans cover."""
    return max(0, min(a.stop, b.stop) - max(a.start, b.start)) / min(_length(a), _length(b))


def _float(page: Page, start: int, stop: int) -> float:
    """How far the bottom of parts [start, stop) stays above that of the parts beside
    them, as a share of the tallest: digits stand on one line, the bar of an open 4 or
    the flag of a 5 do not."""
    beside = page.bottoms[max(0, start - 1) : start] + page.bottoms[stop : stop + 1]
    if not beside:
        return 0.0
    return (max(beside) - max(page.bottoms[start:stop])) / page.tallest


def _digit(ink: np.ndarray, rows: slice, cols: slice, mask: np.ndarray) -> Digit:
    # One pixel more on each side keeps the faint anti-aliased edge of the strokes.
    outer = _grow(rows, ink.shape[0]), _grow(cols, ink.shape[1])
    padded = np.zeros((_length(outer[0]), _length(outer[1])), dtype=bool)
    top, left = rows.start - outer[0].start, cols.start - outer[1].start
    padded[top : top + mask.shape[0], left : left + mask.shape[1]] = mask
    padded = ndimage.binary_dilation(padded)
    pixels = to_mnist(np.where(padded, ink[outer], 0), padded, max(_length(rows), _length(cols)))
    return Digit(cols.start, rows.start, _length(cols), _length(rows), pixels)


def _paste(field: np.ndarray, crop: np.ndarray, top: int, left: int) -> None:
    """Copy crop into field at (top, left), cutting off what falls outside."""
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + crop.shape[0], 28), min(left + crop.shape[1], 28)
    field[y0:y1, x0:x1] = crop[y0 - top : y1 - top, x0 - left : x1 - left]


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def _grow(span: slice, limit: int) -> slice:
    return slice(max(span.start - 1, 0), min(span.stop + 1, limit))


def _length(span: slice) -> int:
    return span.stop - span.start


def _union(boxes) -> Box:
    boxes = list(boxes)
    rows = slice(min(b[0].start for b in boxes), max(b[0].stop for b in boxes))
    cols = slice(min(b[1].start for b in boxes), max(b[1].stop for b in boxes))
    return rows, cols
