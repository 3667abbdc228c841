"""Find the handwritten digits in a picture and make each one look like an MNIST digit.

MNIST's digits were made so: each digit's ink cropped, scaled so that its longer side is
20 pixels (keeping the aspect ratio, anti-aliased), and placed in a 28x28 field with its
centre of mass at the centre; light ink on black. This module does the same to any
picture, so that the model sees drawn digits the way it saw its training data. It is the
only definition of that normalisation and of digit finding: it ships inside the
registered model.

`candidates(image)` cuts the ink into parts, left to right: its connected strokes,
and, where a stroke is too wide for one digit (touching digits), the pieces between the
cuts worth trying. Every run of neighbouring parts that could be one digit is a
candidate, normalised to 28x28 (no network yet, so many pictures make one batch); which
of them are the digits, the network and reading.py decide.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

MIN_CONTRAST = 0.2  # weaker ink than this (0-1) is paper texture or noise: no digit
INK_THRESHOLD = 0.1  # of the strongest ink: MNIST's digits then span exactly 20 pixels
SPECK_AREA = 0.02  # strokes smaller than this part of the largest stroke's area ...
SPECK_SIZE = 0.04  # ... or than this part of the picture's shorter side are specks
FRAGMENT = 0.15  # a stroke with less ink than this share of a neighbour a pixel away is part of it
RULE_LENGTH = 0.5  # ink running on in a straight line across this share of the sheet,
RULE_TILT = 8.0  # ... at up to this many degrees (a sheet photographed a little turned)
RULE_INK = 0.5  # ... and fainter than this share of the strongest ink, is a printed line
RULE_SMOOTH = 15  # ... found in the ink averaged along this many pixels of it
RULE_WIDTH = 13  # ... and thinner than this (pixels): ruled lines are, a digit's bar is not
RULE_MIN_WIDTH = 100  # (pixels) in narrower pictures, no line is looked for
COLUMN_LENGTH = 0.7  # a column of squared paper runs across this share of the sheet
PAPER_SIDE = 160  # the paper and the table are found on the picture shrunk to this side
PAPER_SCALE = 0.5  # the paper: the picture closed over this share of its shorter side
TABLE_DARK = 0.8  # darker than this share of the paper, on the border: the table (or a mat)
TABLE_STEP = 1.25  # ... when its edge is a step of at least this ratio, not a soft shadow
BORDER = 3  # ... (pixels of the shrunk picture where the step is softened by the border)
STROKE_SQUARE = 7  # in a photo shrunk to PAPER_SIDE, a square just wider than a pen's stroke
TARGET_STROKE = 2.5  # MNIST-like stroke width, in pixels of the 20-pixel box

LINE_HEIGHT = 32  # the line reader's input: a number's ink scaled to this many rows ...
LINE_MARGIN = 2  # ... with this many empty on each side
LINE_STROKE = 3.0  # ... its strokes thickened to at least this width (line pixels)

MAX_PARTS = 4  # parts one digit may have: the strokes of a 4 or a 5, pieces of a cut
MAX_ASPECT = 1.6  # a run of parts wider than this times its height is never one digit
MIN_CUT_ASPECT = 1.0  # strokes wider than this times their height are tried cut apart
MAX_CROSSINGS = 2  # ... where a column crosses the ink no more than this many times
CUT_WIDTH = 0.6  # about one cut per this many heights of a wide stroke's width
# A stroke wider than this times its height may be digits joined: it is cut more
# finely, also where columns cross it up to JOINED_CROSSINGS times, at the notches of its
# outline, and along paths that follow its strokes. The fragments this makes of a wide 0
# or 2 alone are the network's to refuse (NOT_A_DIGIT); before it could, such cuts read
# a wide 0 as "10", and this was 1.8 (docs/reading.md).
JOINED_ASPECT = 1.1
JOINED_CROSSINGS, JOINED_CUT_WIDTH = 4, 0.3
MAX_CUTS = 12  # cuts of one stroke at most: a whole number written in one stroke
# Besides the vertical cut, the paths of a marble dropped into the gap from above and
# from below (rolling left or right first) are tried: overlapping digits, a tail under
# the next digit. At most this many of them per cut, those that cross the least ink.
MAX_PATHS = 2
NOTCH = 0.08  # an outline dipping this share of the height between digits is a place to cut
ROLL = 0.3  # a marble rolls sideways at most this share of the stroke's height per row
SMALL_HEIGHT = 0.5  # strokes lower than this share of the tallest are never cut apart
# The network's 11th answer (after the digits 0-9): a candidate that is not one whole
# digit, a piece of one or two joined (learnt from pipeline/pieces.py).
NOT_A_DIGIT = 10


Box = tuple[slice, slice]  # rows, columns


@dataclass(frozen=True)
class Digit:
    """One digit found in a picture: its box in picture pixels and its 28x28 MNIST form."""

    x: int
    y: int
    width: int
    height: int
    pixels: np.ndarray  # (28, 28) uint8, light ink on black


@dataclass(frozen=True)
class Line:
    """A number's strokes (not its specks) in their box, scaled to LINE_HEIGHT rows with
    a margin, light ink on black: what the line reader reads whole (digit_reader/lines.py).
    A point (column, row) of it lies at x + (column - LINE_MARGIN) / scale in the picture."""

    pixels: np.ndarray  # (LINE_HEIGHT, width) uint8
    x: int
    y: int
    scale: float  # line pixels per picture pixel


@dataclass
class Page:
    """A picture cut into parts, and the candidate digits (runs of parts) to classify."""

    parts: int = 0
    tallest: int = 1  # height of the tallest part, in picture pixels
    # Between each part and the next (0 after the last):
    gaps: list[float] = field(default_factory=list)  # empty columns, / tallest
    overlaps: list[float] = field(default_factory=list)  # shared columns, / the narrower
    # At each boundary between parts (0 before the first .. parts after the last): the
    # ways it may be cut, each with the strokes it crosses ([0] where no stroke is cut).
    crossings: list[list[int]] = field(default_factory=list)
    bottoms: list[int] = field(default_factory=list)  # of each part, in picture pixels
    # The candidates:
    runs: list[tuple[int, int]] = field(default_factory=list)  # parts [start, stop)
    ends: list[tuple[int, int]] = field(default_factory=list)  # the ways its ends are cut
    digits: list[Digit] = field(default_factory=list)  # one per run
    line: Line | None = None  # the whole number, for the line reader
    strokes: int = 0  # connected strokes of ink (not specks): digits joined make fewer

    @property
    def pixels(self) -> np.ndarray:
        """The candidates as a batch for the network: (n, 28, 28, 1) uint8."""
        if not self.digits:
            return np.zeros((0, 28, 28, 1), dtype=np.uint8)
        return np.stack([d.pixels for d in self.digits])[..., np.newaxis]


def ink_of(image: Image.Image) -> np.ndarray:
    """Ink strength in [0, 1] per pixel, whatever the colours; 0 is background."""
    return _ink_on_sheet(image)[0]


def _ink_on_sheet(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The ink, and where the sheet is (a boolean mask: not the table around it)."""
    image = ImageOps.exif_transpose(image)
    if "A" in image.getbands() or "transparency" in image.info:
        # A transparent picture: what is painted is the ink.
        ink = np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float32) / 255
        return ink, np.ones(ink.shape, bool)
    gray = _brightness(image)
    if not _dark_on_light(gray):
        gray = 1 - gray
    small = _shrink(gray)
    scale = small.shape[0] / gray.shape[0]
    # First with a square wider than any stroke, to measure the strokes; then with one
    # just wider than them, so that light that dips in the middle is followed too.
    rough = 1 - gray / np.maximum(
        _grow_to(_paper(small, PAPER_SCALE * min(small.shape)), gray.shape), 1e-3
    )
    paper = _paper(small, scale * (3 * _stroke_width(rough) + 4))
    under = _grow_to(paper, gray.shape)
    ink = (under - gray) / np.maximum(under, 1e-3)  # no paper (a black picture): no ink
    table = _grow_to(_table(small, paper), gray.shape) > 0
    ink[table] = 0
    return _without_lines(np.clip(ink, 0, 1), ~table), ~table


def on_paper(image: Image.Image) -> Image.Image:
    """The picture as the model sees it: upright (EXIF), its ink dark on white paper."""
    return Image.fromarray(np.round(255 * (1 - ink_of(image))).astype(np.uint8))


def _brightness(image: Image.Image) -> np.ndarray:
    """Grey levels in [0, 1] where coloured lines (a light blue rule, a red margin) are
    lighter than in plain luminance and dark ink of any hue stays dark: the mean of the
    luminance and the brightest channel."""
    if image.mode != "P" and len(image.getbands()) == 1:  # grey already
        return np.asarray(image.convert("L"), dtype=np.float32) / 255
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    luminance = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (luminance + rgb.max(axis=2)) / 2


def _dark_on_light(gray: np.ndarray) -> bool:
    """Whether the ink is darker than the paper: the paper is most of the picture (its
    median), the ink the far tail on one side. In a photo a sheet on a dark table may
    leave the table most of the picture, and the far tail is then the paper: there the
    thin strokes decide, dark ones on light or light on dark (the ink is a line, the
    table a region). (Not in a small picture, as an MNIST scan, whose middle is the
    digit.)"""
    dark = _polarity(gray)
    if dark or min(gray.shape) < PAPER_SIDE:
        return dark
    small = _shrink(gray)
    square = np.ones((STROKE_SQUARE, STROKE_SQUARE), np.uint8)
    padded = cv2.copyMakeBorder(small, *[STROKE_SQUARE] * 4, cv2.BORDER_REPLICATE)
    thin_dark = cv2.morphologyEx(padded, cv2.MORPH_BLACKHAT, square)
    thin_light = cv2.morphologyEx(padded, cv2.MORPH_TOPHAT, square)
    return np.percentile(thin_dark, 99) >= np.percentile(thin_light, 99)


def _polarity(gray: np.ndarray) -> bool:
    """Whether the far tail of the grey levels is the dark one."""
    sample = gray[:: max(1, gray.shape[0] // 200), :: max(1, gray.shape[1] // 200)]
    low, middle, high = np.percentile(sample, [0.5, 50, 99.5])
    return middle - low >= high - middle


def _shrink(gray: np.ndarray) -> np.ndarray:
    scale = PAPER_SIDE / min(gray.shape)
    if scale >= 1:
        return gray
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _grow_to(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if small.shape == shape:
        return small
    interpolation = cv2.INTER_NEAREST if small.dtype == np.uint8 else cv2.INTER_LINEAR
    return cv2.resize(small, (shape[1], shape[0]), interpolation=interpolation)


def _stroke_width(ink: np.ndarray) -> float:
    """The width of the widest strokes, in pixels: twice the distance from the middle of
    a stroke to its edge, at the 99th percentile of the ink pixels."""
    strong = (ink > 0.5 * float(ink.max(initial=0))).astype(np.uint8)
    if not strong.any():
        return 0.0
    distance = cv2.distanceTransform(strong, cv2.DIST_L2, 3)
    # (No paper at all, as a blank picture: as wide as the picture.)
    return min(2 * float(np.percentile(distance[strong > 0], 99)), float(min(ink.shape)))


def _paper(small: np.ndarray, size: float) -> np.ndarray:
    """The paper's brightness at each pixel: the picture closed (a maximum, then a
    minimum, over a square wider than any stroke), so that ink, lines and thin shadows
    vanish while light that changes across the sheet, even steeply, is followed exactly;
    a region that touches the border (the table) keeps its own brightness."""
    size = max(3, int(size) | 1)
    # Beyond the border the picture goes on as at the border: a table there stays table.
    padded = cv2.copyMakeBorder(small, size, size, size, size, cv2.BORDER_REPLICATE)
    closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, np.ones((size, size), np.uint8))
    return closed[size:-size, size:-size]


def _table(small: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """Where the picture shows what the sheet lies on (uint8 mask). The sheet's edge is a
    sharp step in the paper's brightness (a shadow's edge is soft, light changes slowly,
    ink and lines are gone from the paper), so the steps cut the picture into regions;
    a region that touches the border and is much darker than the regions beside it,
    across its edge, is the table. Each region is judged by its own edge, however far its
    far side lies from the sheet."""
    window = np.ones((5, 5), np.uint8)
    step = cv2.dilate(paper, window) / np.maximum(cv2.erode(paper, window), 1e-3)
    edge = (step >= TABLE_STEP).astype(np.uint8)
    # In its last pixels the step is softened (the closing goes on beyond the border
    # as at it): the edge there goes on as it is a few pixels in, or the table and the
    # sheet would be one region, joined by the gap.
    edge[:, :BORDER] |= edge[:, BORDER : BORDER + 1]
    edge[:, -BORDER:] |= edge[:, -BORDER - 1 : -BORDER]
    edge[:BORDER] |= edge[BORDER : BORDER + 1]
    edge[-BORDER:] |= edge[-BORDER - 1 : -BORDER]
    if not edge.any():
        return np.zeros(small.shape, np.uint8)
    count, labels = cv2.connectedComponents(1 - edge, connectivity=4)
    border = np.zeros(small.shape, bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    touching = set(np.unique(labels[border & (edge == 0)])) - {0}
    near = np.ones((15, 15), np.uint8)
    table = np.zeros(small.shape, bool)
    for label in touching:
        region = (labels == label).astype(np.uint8)
        beside = (cv2.dilate(region, near) > 0) & (region == 0) & (edge == 0)
        if not beside.any():
            continue  # the whole picture but for edges: no sheet beside it
        inside = (cv2.dilate(beside.astype(np.uint8), near) > 0) & (region > 0)
        dark, light = np.median(paper[inside]), np.median(paper[beside])
        if dark < TABLE_DARK * light:
            # The region, and what of its edge (and of pockets cut off in it) is nearer
            # the table's brightness than the sheet's.
            table |= (cv2.dilate(region, near) > 0) & (paper < np.sqrt(dark * light))
            table |= region > 0
    # The sheet's edge itself, where it reaches the border: the paper steps there, so
    # what is ink is not known (ink is far from the edge; a thick stroke's edge is not
    # at the border).
    count, pieces = cv2.connectedComponents(edge, connectivity=8)
    table |= np.isin(pieces, list(set(np.unique(pieces[border])) - {0}))
    # And a little more: the sheet's soft rim and its shadow on the table.
    return cv2.dilate(table.astype(np.uint8), window)


def candidates(image: Image.Image) -> Page:
    """The parts of a picture's ink and every run of them that could be one digit, with
    each way of cutting its ends where they lie inside a stroke."""
    ink, sheet = _ink_on_sheet(image)
    strongest = float(ink.max(initial=0))
    if strongest < MIN_CONTRAST:
        return Page()
    ink = ink / strongest
    kept = _kept_strokes(ink, max(INK_THRESHOLD, _noise(ink, sheet)))
    strokes, parts = _parts(kept)
    tallest = max(_length(part.box[0]) for part in parts) if parts else 1
    pairs = list(zip(parts, parts[1:], strict=False))
    boundaries = [None, *(_boundary_cut(strokes, a, b) for a, b in pairs), None]
    page = Page(
        parts=len(parts),
        tallest=tallest,
        gaps=[max(0, b.box[1].start - a.box[1].stop) / tallest for a, b in pairs] + [0.0],
        overlaps=[_overlap(a.box[1], b.box[1]) for a, b in pairs] + [0.0],
        crossings=[_ways(strokes, boundary) for boundary in boundaries],
        bottoms=[part.box[0].stop for part in parts],
        line=_line(ink, kept),
        strokes=len(kept),
    )
    # A stroke cut in pieces stays a candidate whole, however wide or many its pieces:
    # a wide 2 alone is one digit (the prior on width weighs it).
    whole = {(i, i + 1) for i in range(len(parts))}
    for index in range(len(strokes)):
        pieces = [i for i, part in enumerate(parts) if part.stroke == index]
        if pieces == list(range(pieces[0], pieces[-1] + 1)):
            whole.add((pieces[0], pieces[-1] + 1))
    runs = {
        (a, b) for a in range(len(parts)) for b in range(a + 1, min(a + MAX_PARTS, len(parts)) + 1)
    }
    for start, stop in sorted(runs | whole):
        for left in range(len(page.crossings[start])):
            for right in range(len(page.crossings[stop])):
                ends = (boundaries[start], left), (boundaries[stop], right)
                region = _region(strokes, parts[start:stop], *ends)
                if region is None:
                    continue
                (rows, cols), mask = region
                if (start, stop) not in whole and _length(cols) > MAX_ASPECT * _length(rows):
                    continue
                page.runs.append((start, stop))
                page.ends.append((left, right))
                page.digits.append(_digit(ink, rows, cols, mask))
    return page


def line_of(ink: np.ndarray) -> Line | None:
    """The line of a clean picture's ink (0-1, 0 is paper): for making training lines."""
    return _line(ink, _kept_strokes(ink, INK_THRESHOLD * float(ink.max(initial=0))))


def _line(ink: np.ndarray, kept: list[tuple[Box, np.ndarray]]) -> Line | None:
    if not kept:
        return None
    rows, cols = _union([box for box, _ in kept])
    mask = np.zeros((_length(rows), _length(cols)), dtype=bool)
    for (part_rows, part_cols), part_mask in kept:
        top, left = part_rows.start - rows.start, part_cols.start - cols.start
        mask[top : top + part_mask.shape[0], left : left + part_mask.shape[1]] |= part_mask
    scale = (LINE_HEIGHT - 2 * LINE_MARGIN) / mask.shape[0]
    stroke = 2 * mask.sum() / max(_boundary(mask).sum(), 1)
    # The faint anti-aliased edge of the strokes too, as in _digit.
    crop = np.where(ndimage.binary_dilation(mask), ink[rows, cols], 0).astype(np.float32)
    grow = int(round((LINE_STROKE / scale - stroke) / 2))
    if grow > 0:  # thin strokes on a big canvas would be hair-thin at 28 rows
        crop = ndimage.maximum_filter(crop, size=2 * grow + 1)
    size = (max(1, round(crop.shape[1] * scale)), LINE_HEIGHT - 2 * LINE_MARGIN)
    small = np.asarray(Image.fromarray(crop, "F").resize(size, Image.BILINEAR))
    small = np.pad(np.clip(small / max(float(small.max()), 1e-6), 0, 1), LINE_MARGIN)
    return Line(np.round(small * 255).astype(np.uint8), cols.start, rows.start, scale)


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


def _noise(ink: np.ndarray, sheet: np.ndarray) -> float:
    """An ink level that the paper's own grain and a sensor's noise reach now and then:
    the median and four spreads of the faint pixels of the sheet (0 on a clean canvas;
    the table, where no ink is, would hide the sheet's noise)."""
    every = np.s_[:: max(1, ink.shape[0] // 150), :: max(1, ink.shape[1] // 150)]
    sample = ink[every][sheet[every]]
    faint = sample[sample < 0.3]
    if faint.size == 0:
        return 0.0
    middle = float(np.median(faint))
    return middle + 4 * 1.4826 * float(np.median(np.abs(faint - middle)))


@dataclass(frozen=True)
class _Stroke:
    """A connected stroke and the cuts worth trying across it, left to right; each cut
    has its ways, the vertical one first: (for each row of the box, the first column of
    the right side; the strokes the way crosses)."""

    box: Box
    mask: np.ndarray
    cuts: list[list[tuple[np.ndarray, int]]]


@dataclass(frozen=True)
class _Part:
    """A stroke, or the piece of one between two vertical cuts: parts are what runs join."""

    stroke: int
    piece: int  # 0, 1, ... from the left of its stroke
    box: Box
    mask: np.ndarray


def _parts(kept: list[tuple[Box, np.ndarray]]) -> tuple[list[_Stroke], list[_Part]]:
    """The strokes kept (not specks), with their cuts, and the parts they make (wide
    strokes cut at their vertical cuts), by their centres, left to right."""
    tallest = max((_length(rows) for (rows, _), _ in kept), default=1)
    strokes, parts = [], []
    for (rows, cols), mask in kept:
        # Only a stroke of a digit's height can be two digits joined.
        cuts = _cuts(mask) if _length(rows) >= SMALL_HEIGHT * tallest else []
        stroke = _Stroke((rows, cols), mask, cuts)
        edges = [0, *(int(ways[0][0][0]) for ways in cuts), _length(cols)]
        for piece, (left, right) in enumerate(zip(edges, edges[1:], strict=False)):
            box, piece_mask = _tight(stroke, np.s_[:, left:right])
            parts.append(_Part(len(strokes), piece, box, piece_mask))
        strokes.append(stroke)
    return strokes, sorted(parts, key=lambda part: part.box[1].start + part.box[1].stop)


def _kept_strokes(ink: np.ndarray, threshold: float) -> list[tuple[Box, np.ndarray]]:
    """The box and mask of each stroke of the ink that is not a speck."""
    labels = _strokes(ink > threshold)
    count = int(labels.max())
    boxes = ndimage.find_objects(labels)
    areas = ndimage.sum_labels(np.ones_like(ink), labels, range(1, count + 1))
    min_size = SPECK_SIZE * min(ink.shape)
    return [
        (box, labels[box] == i + 1)
        for i, box in enumerate(boxes)
        if box  # None: a fragment now part of another stroke
        and areas[i] >= SPECK_AREA * areas.max()
        and max(_length(box[0]), _length(box[1])) >= min_size
    ]


def _tight(stroke: _Stroke, keep) -> tuple[Box, np.ndarray]:
    """The box (in picture pixels) and mask of the ink of a stroke that keep selects
    (a slice or a boolean array over the stroke's box)."""
    mask = np.zeros_like(stroke.mask)
    mask[keep] = stroke.mask[keep]
    filled_rows, filled_cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(filled_rows) == 0:
        return (slice(0, 0), slice(0, 0)), mask[:0, :0]
    top, bottom, left, right = (
        filled_rows[0],
        filled_rows[-1] + 1,
        filled_cols[0],
        filled_cols[-1] + 1,
    )
    rows, cols = stroke.box
    box = (
        slice(rows.start + top, rows.start + bottom),
        slice(cols.start + left, cols.start + right),
    )
    return box, mask[top:bottom, left:right]


def _boundary_cut(strokes: list[_Stroke], a: _Part, b: _Part) -> tuple[int, int, bool] | None:
    """The cut between parts a and b, left to right: (stroke, its cut, whether all its
    ways may be tried: only where b is the piece right of it), or None where a is not
    followed by a cut (a whole stroke, the last piece)."""
    if a.piece >= len(strokes[a.stroke].cuts):
        return None
    return a.stroke, a.piece, (b.stroke, b.piece) == (a.stroke, a.piece + 1)


def _ways(strokes: list[_Stroke], boundary) -> list[int]:
    """The strokes crossed by each way a boundary may be cut; [0] where nothing is cut."""
    if boundary is None:
        return [0]
    stroke, cut, every = boundary
    ways = strokes[stroke].cuts[cut]
    return [crossed for _, crossed in (ways if every else ways[:1])]


def _region(strokes: list[_Stroke], run: list[_Part], left, right):
    """The box and mask of the ink of a run of parts whose ends are cut the ways given
    ((boundary, way) each): of each stroke, its ink between the cuts that bound the run's
    pieces of it. None where the two cuts of one stroke cross."""
    boxes, masks = [], []
    for stroke_index in dict.fromkeys(part.stroke for part in run):
        stroke = strokes[stroke_index]
        pieces = [part.piece for part in run if part.stroke == stroke_index]
        height, width = stroke.mask.shape
        first = np.zeros(height, dtype=int)
        last = np.full(height, width)
        if min(pieces) > 0:
            first = _way(stroke, stroke_index, min(pieces) - 1, left)
        if max(pieces) < len(stroke.cuts):
            last = _way(stroke, stroke_index, max(pieces), right)
        if (first > last).any():
            return None
        columns = np.arange(width)[None, :]
        box, mask = _tight(stroke, (columns >= first[:, None]) & (columns < last[:, None]))
        if mask.size == 0:
            return None
        boxes.append(box)
        masks.append(mask)
    rows, cols = _union(boxes)
    whole = np.zeros((_length(rows), _length(cols)), dtype=bool)
    for (part_rows, part_cols), mask in zip(boxes, masks, strict=True):
        top, left_edge = part_rows.start - rows.start, part_cols.start - cols.start
        whole[top : top + mask.shape[0], left_edge : left_edge + mask.shape[1]] |= mask
    return (rows, cols), whole


def _way(stroke: _Stroke, stroke_index: int, cut: int, end) -> np.ndarray:
    """The columns of a stroke's cut, the way the run's end says where that end is
    this cut, else the vertical way."""
    boundary, way = end
    if boundary is not None and boundary[:2] == (stroke_index, cut) and boundary[2]:
        return stroke.cuts[cut][way][0]
    return stroke.cuts[cut][0][0]


def _strokes(ink: np.ndarray) -> np.ndarray:
    """The connected strokes of the ink, labelled 1, 2, ...; a fragment a pixel away from
    a much larger stroke (the faint edge of a stroke, a skip of the pen) is part of it."""
    labels, count = ndimage.label(ink, structure=np.ones((3, 3)))
    near, _ = ndimage.label(ndimage.binary_dilation(ink), structure=np.ones((3, 3)))
    areas = ndimage.sum_labels(ink, labels, range(1, count + 1))
    # The group of each stroke (ndimage.maximum sorts the whole picture: slow).
    inked = labels > 0
    groups = np.zeros(count + 1, dtype=near.dtype)
    np.maximum.at(groups, labels[inked], near[inked])
    groups = groups[1:]
    largest: dict[int, int] = {}  # group -> its largest stroke
    for stroke, group in enumerate(groups, start=1):
        if group not in largest or areas[stroke - 1] > areas[largest[group] - 1]:
            largest[group] = stroke
    relabel = np.arange(count + 1)
    for stroke, group in enumerate(groups, start=1):
        if areas[stroke - 1] < FRAGMENT * areas[largest[group] - 1]:
            relabel[stroke] = largest[group]
    return relabel[labels]


def _without_lines(ink: np.ndarray, sheet: np.ndarray) -> np.ndarray:
    """The ink less the lines of ruled or squared paper. A line is ink that runs on in a
    straight line, at the sheet's tilt, across most of the sheet, fainter than a pen's
    stroke. Its own strength is taken away where it runs: ink written over it, stronger,
    stays whole, and the line becomes paper."""
    strongest = float(ink.max(initial=0))
    if ink.shape[1] < RULE_MIN_WIDTH or strongest < MIN_CONTRAST:
        return ink
    level = max(INK_THRESHOLD, _noise(ink / strongest, sheet)) * strongest
    found = {"sheet": sheet, "cap": RULE_INK * strongest, "level": level}
    angle = _tilt(ink > level, axis=1)
    lines = _lines(ink, angle, RULE_LENGTH, axis=1, **found)
    if lines.any():
        # Squared paper or a margin line: columns too, once rows of lines are found,
        # at right angles to them as the picture shows it (a tenth of a degree off
        # leaves a thin column in no column of pixels for long).
        rest = ink - lines
        angle = _tilt(rest > level, axis=0, around=angle, spread=1.0)
        lines = np.maximum(lines, _lines(rest, angle, COLUMN_LENGTH, axis=0, **found))
    # A pixel more on each side: turned and back, a line is a little blurred.
    return np.clip(ink - cv2.dilate(lines, np.ones((3, 3), np.uint8)), 0, None)


def _lines(ink, angle: float, share: float, axis: int, sheet, cap: float, level: float):
    """How strong the lines along axis (1: rows, 0: columns) at angle are at each pixel,
    0 where there is none. In the picture turned by angle and the ink averaged along the
    axis (noise and JPEG break a faint line into dashes; averaged, it is whole), a line
    runs on across `share` of the sheet at a third of the ink's level or more: between
    the digits of a number the paper shows, along a line it does not. Its strength is
    the averaged ink there, up to half as much again as the least along it (a digit
    crossing it is stronger) and to cap."""
    height, width = ink.shape
    turn, size = _turn(angle, width, height)
    turned = cv2.warpAffine(ink, turn, size, flags=cv2.INTER_LINEAR)
    # Beyond the sheet (the table, or outside the picture once turned) a line goes on
    # as far as anyone knows: a line cut there by the sheet's edge is still a line.
    off_sheet = cv2.warpAffine(sheet.astype(np.uint8), turn, size) == 0
    extent = np.flatnonzero((~off_sheet).any(axis=1 - axis))
    if len(extent) == 0:
        return np.zeros_like(ink)
    # Shrunk along the axis: each pixel the mean of RULE_SMOOTH along it.
    cells = max(1, size[1 - axis] // RULE_SMOOTH)
    along = (cells, size[1]) if axis == 1 else (size[0], cells)
    averaged = cv2.resize(turned, along, interpolation=cv2.INTER_AREA)
    beyond = cv2.resize(off_sheet.astype(np.uint8), along, interpolation=cv2.INTER_NEAREST) > 0
    steps = max(1, int(share * (extent[-1] - extent[0] + 1) / RULE_SMOOTH))
    run = np.ones((1, steps) if axis == 1 else (steps, 1), np.uint8)
    least = cv2.morphologyEx(
        np.where(beyond, 1.0, averaged).astype(np.float32), cv2.MORPH_OPEN, run
    )
    line = ((least >= level / 3) & ~beyond).astype(np.uint8)
    # A line is thin across: a band as thick as a digit's bar that runs on is a row of
    # digits joined (fast writing), not paper.
    across = np.ones((RULE_WIDTH, 1) if axis == 1 else (1, RULE_WIDTH), np.uint8)
    line = (line > 0) & (cv2.morphologyEx(line, cv2.MORPH_OPEN, across) == 0)
    strength = np.minimum(np.minimum(averaged, 1.5 * least), cap)
    strength = np.where(line, strength, 0).astype(np.float32)
    strength = cv2.resize(strength, size, interpolation=cv2.INTER_LINEAR)
    back = cv2.invertAffineTransform(turn)
    return cv2.warpAffine(strength, back, (width, height), flags=cv2.INTER_LINEAR)


def _turn(degrees: float, width: int, height: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The affine map that turns a picture clockwise by degrees about its centre, onto a
    canvas large enough to keep all of it (a line in a corner stays whole), and that
    canvas' size."""
    cos, sin = abs(np.cos(np.radians(degrees))), abs(np.sin(np.radians(degrees)))
    size = int(np.ceil(cos * width + sin * height)), int(np.ceil(sin * width + cos * height))
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), -degrees, 1.0)
    turn[:, 2] += (size[0] - width) / 2, (size[1] - height) / 2
    return turn, size


def _tilt(ink: np.ndarray, axis: int, around: float = 0.0, spread: float = RULE_TILT) -> float:
    """The angle (degrees, counter-clockwise) within spread of around at which the ink
    lines up best in rows (axis 1) or in columns (axis 0): the tilt of ruled lines, where
    there are any (the sharpest histogram of the positions across them)."""
    ys, xs = np.nonzero(ink)
    step = max(1, len(ys) // 30_000)
    ys, xs = ys[::step].astype(np.float32), xs[::step].astype(np.float32)
    if len(ys) == 0:
        return around

    def sharpness(degrees: float) -> float:
        t = np.radians(degrees)
        if axis == 1:
            across = ys * np.cos(t) + xs * np.sin(t)
        else:
            across = xs * np.cos(t) - ys * np.sin(t)
        positions = np.round(across).astype(np.int64)
        counts = np.bincount(positions - positions.min())
        return float(np.dot(counts, counts))

    coarse = np.arange(around - spread, around + spread + 0.01, 0.5)
    best = max(coarse, key=sharpness)
    return float(max(np.arange(best - 0.5, best + 0.51, 0.1), key=sharpness))


def _cuts(mask: np.ndarray) -> list[list[tuple[np.ndarray, int]]]:
    """The cuts worth trying across a stroke, left to right, each with its ways: the
    vertical line at a thinnest column first, then the paths of marbles dropped there."""
    height, width = mask.shape
    if width <= MIN_CUT_ASPECT * height:
        return []
    # A cut is a column with the least ink within a narrow digit's width around it,
    # at least that far from the ends and from other cuts: the thinnest first.
    spacing = max(2, int(0.2 * height))
    column_ink = ndimage.uniform_filter1d(mask.sum(axis=0).astype(float), max(1, height // 10))
    lowest = ndimage.minimum_filter1d(column_ink, 2 * spacing + 1)
    # Digits that touch join in one stroke: a cut there crosses it once, or twice where
    # they overlap (as does a cut through the middle of a wide 0: the costlier cut).
    crossings = (np.diff(mask.astype(np.int8), axis=0) == 1).sum(axis=0) + mask[0]
    joined = width > JOINED_ASPECT * height
    most = JOINED_CROSSINGS if joined else MAX_CROSSINGS
    minima = [
        x
        for x in range(spacing, width - spacing)
        if column_ink[x] == lowest[x] and crossings[x] <= most
    ]
    if joined:
        # Where digits overlap, no column is thin; the notches of the outline between
        # them, from above and from below, are where a marble finds the way between them.
        minima += [x for x in _notches(mask, spacing) if x not in minima]
    # About one cut per narrow digit's width; never more pieces than a digit may have
    # where the stroke may be one digit, so that the whole stroke stays a candidate.
    per = JOINED_CUT_WIDTH if joined else CUT_WIDTH
    most_cuts = MAX_PARTS - 1 if width <= MAX_ASPECT * height else MAX_CUTS
    wanted = min(most_cuts, max(1, round(width / (per * height))))
    chosen: list[int] = []
    for x in sorted(minima, key=lambda x: (crossings[x], column_ink[x])):
        if len(chosen) < wanted and all(abs(x - c) >= spacing for c in chosen):
            chosen.append(x)
    edges = _nonempty(mask, [0, *sorted(chosen), width])
    cuts = []
    for before, x, after in zip(edges, edges[1:-1], edges[2:], strict=False):
        vertical = np.full(height, x)
        ways = [(vertical, _crossed(mask, vertical))]
        for path in _paths(mask, x, spacing, before + 1, after - 1) if joined else []:
            ways.append((path, _crossed(mask, path)))
        cuts.append(_distinct(mask, ways))
    return cuts


def _nonempty(mask: np.ndarray, edges: list[int]) -> list[int]:
    """The edges less those that would leave a piece without ink (a fragment joined to
    the stroke may leave empty columns)."""
    kept = [edges[0]]
    for edge in edges[1:-1]:
        if mask[:, kept[-1] : edge].any():
            kept.append(edge)
    if len(kept) > 1 and not mask[:, kept[-1] :].any():
        kept.pop()
    return [*kept, edges[-1]]


def _notches(mask: np.ndarray, spacing: int) -> list[int]:
    """Columns where the top outline of a stroke dips lowest, or its bottom outline
    rises highest, within spacing on each side, by over NOTCH of the stroke's height."""
    height, width = mask.shape
    filled = mask.any(axis=0)
    notches = []
    for outline in (mask.argmax(axis=0), mask[::-1].argmax(axis=0)):
        depth = np.where(filled, outline, 0)
        deepest = ndimage.maximum_filter1d(depth, 2 * spacing + 1)
        shallowest = ndimage.minimum_filter1d(depth, 2 * spacing + 1)
        notches += [
            x
            for x in range(spacing, width - spacing)
            if depth[x] == deepest[x]
            and depth[x] - shallowest[x] > NOTCH * height
            and (x == 0 or depth[x - 1] != depth[x])  # once per flat bottom
        ]
    return notches


def _paths(mask: np.ndarray, x: int, spacing: int, lowest: int, highest: int):
    """Cut paths near column x that follow the strokes: a marble dropped from above
    into the deepest notch of the top outline near x, and one risen from below into
    the highest notch of the bottom outline, each rolling left or right first."""
    height, width = mask.shape
    filled = mask.any(axis=0)
    top = np.where(filled, mask.argmax(axis=0), height)
    bottom = np.where(filled, mask[::-1].argmax(axis=0), height)  # rows of paper below
    near = np.arange(max(0, x - spacing), min(width, x + spacing + 1))
    from_above = int(near[np.argmax(top[near])])
    from_below = int(near[np.argmax(bottom[near])])
    for right_first in (False, True):
        yield np.clip(_drop(mask, from_above, right_first), lowest, highest)
        yield np.clip(_drop(mask[::-1], from_below, right_first)[::-1], lowest, highest)


def _drop(mask: np.ndarray, column: int, right_first: bool) -> np.ndarray:
    """The path of a marble dropped above column column of a stroke (drop-fall): it
    falls where the paper below is free, else rolls down to a side, else slides along
    the stroke to a free spot (a little way at most), else cuts through the ink. Per
    row, the first column of the right side."""
    height, width = mask.shape
    free = ~mask
    sides = (1, -1) if right_first else (-1, 1)
    roll = max(1, int(ROLL * height))
    path = np.empty(height, dtype=int)
    c = column
    for r in range(height):
        if not free[r, c]:
            for side in sides:
                if 0 <= c + side < width and free[r, c + side]:
                    c += side
                    break
            else:
                c = _slide(free, r, c, sides, roll, path)
        path[r] = c
    return path


def _slide(free: np.ndarray, r: int, c: int, sides, roll: int, path: np.ndarray) -> int:
    """Where a marble above a blocked pixel goes: along the free row above to the
    nearest column (preferred side first) whose pixel below is free, moving its path
    in the row above too; or through the ink where it is."""
    width = free.shape[1]
    for side in sides:
        for step in range(1, roll + 1):
            x = c + side * step
            if not 0 <= x < width or (r > 0 and not free[r - 1, x]):
                break
            if free[r, x]:
                if r > 0:
                    path[r - 1] = x
                return x
    return c


def _crossed(mask: np.ndarray, path: np.ndarray) -> int:
    """How many strokes a cut path crosses: the runs of rows where it goes through ink."""
    inside = mask[np.arange(len(path)), np.clip(path, 0, mask.shape[1] - 1)]
    inside &= path < mask.shape[1]
    return int(np.count_nonzero(np.diff(inside.astype(np.int8), prepend=0) == 1))


def _distinct(mask: np.ndarray, ways: list[tuple[np.ndarray, int]]) -> list[tuple[np.ndarray, int]]:
    """The vertical way, and of the others the MAX_PATHS crossing the fewest strokes,
    leaving out those that part the ink as a way already kept does."""
    columns = np.arange(mask.shape[1])[None, :]
    kept, sides = [], []
    vertical, others = ways[0], sorted(ways[1:], key=lambda way: way[1])
    for path, crossed in [vertical, *others]:
        left = mask & (columns < path[:, None])
        if any(np.array_equal(left, side) for side in sides):
            continue
        if len(kept) > MAX_PATHS:
            break
        kept.append((path, crossed))
        sides.append(left)
    return kept


def _overlap(a: slice, b: slice) -> float:
    """The share of the shorter span that both spans cover."""
    return max(0, min(a.stop, b.stop) - max(a.start, b.start)) / min(_length(a), _length(b))


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
