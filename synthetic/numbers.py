"""Written numbers, the way people write them: a benchmark made from a seed.

Each set holds pictures of whole numbers and the digits they show. They are composed of
MNIST *test* digits (never seen in training), each scaled on its own, or of digits drawn
as pen strokes, with the variation people's writing has: sizes that differ within one
number, gaps from wide down to touching, a wavy baseline, slant, thin and thick pens,
small digits, specks, light ink on dark, JPEG, and grey, lined or unevenly lit paper.

    sets = make_sets(test_images, test_labels, seed=0, count=100)
    for name, numbers in sets.items():
        for number in numbers:  # number.png: PNG or JPEG bytes, number.digits: "2026"
            ...

The same seed gives the same pictures. `score` compares what a reader answered with the
truth: whole numbers right, digits right, and the kind of each miss. The `evaluate` stage
reports a fixed part of it; `bench/reading.py` prints the full table.
"""

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from synthetic.pen import pen_line

Rng = np.random.Generator
TOUCH_INK = 0.3  # ink this strong (0-1) joins strokes: digits touch where it meets


@dataclass(frozen=True)
class Number:
    png: bytes  # the encoded picture (PNG, or JPEG where the set says so)
    digits: str  # what it shows, left to right


# --- digits as pen strokes --------------------------------------------------------------


def arc(cx, cy, rx, ry, start, stop, steps=14):
    """Points of an elliptic arc; angles in degrees, 0 = right, 90 = down (y grows down)."""
    t = np.radians(np.linspace(start, stop, steps))
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t), strict=True))


# Each digit: ways people write it, each a list of strokes in a unit box (x right, y down).
PEN_DIGITS = {
    "0": [[arc(0.5, 0.5, 0.5, 0.5, -90, 275)]],
    "1": [[[(0.5, 0.0), (0.5, 1.0)]], [[(0.2, 0.22), (0.55, 0.0), (0.55, 1.0)]]],
    "2": [
        [arc(0.5, 0.3, 0.48, 0.3, 195, 380) + [(0.0, 1.0), (1.0, 1.0)]],
        [arc(0.5, 0.3, 0.48, 0.3, 200, 370) + [(0.05, 0.95), (0.3, 0.85), (1.0, 1.0)]],
    ],
    "3": [
        [arc(0.5, 0.26, 0.45, 0.26, 200, 450) + arc(0.5, 0.74, 0.5, 0.26, 270, 520)],
        [[(0.05, 0.0), (0.95, 0.0), (0.4, 0.42)] + arc(0.5, 0.72, 0.5, 0.28, 270, 520)],
    ],
    "4": [
        [[(0.45, 0.0), (0.0, 0.6), (0.6, 0.6)], [(0.8, 0.0), (0.8, 1.0)]],  # strokes apart
        [[(0.1, 0.0), (0.05, 0.55), (1.0, 0.55)], [(0.8, 0.0), (0.8, 1.0)]],
    ],
    "5": [
        [[(0.2, 0.0), (0.12, 0.45)] + arc(0.5, 0.7, 0.48, 0.3, 225, 515)]
        + [[(0.45, 0.0), (1.0, 0.0)]],  # the flag apart
        [[(0.95, 0.0), (0.2, 0.0), (0.12, 0.45)] + arc(0.5, 0.7, 0.48, 0.3, 225, 515)],
    ],
    "6": [
        [[(0.85, 0.0), (0.45, 0.18), (0.12, 0.5)] + arc(0.5, 0.7, 0.45, 0.3, 170, 530)],
    ],
    "7": [
        [[(0.0, 0.0), (1.0, 0.0), (0.35, 1.0)]],
        [[(0.0, 0.05), (1.0, 0.0), (0.4, 1.0)], [(0.3, 0.5), (0.85, 0.5)]],
    ],
    "8": [
        [arc(0.5, 0.25, 0.4, 0.25, 90, 450), arc(0.5, 0.74, 0.5, 0.26, -90, 270)],
        [
            arc(0.5, 0.25, 0.4, 0.25, 60, 260)
            + arc(0.5, 0.74, 0.5, 0.26, -90, 270)
            + arc(0.5, 0.25, 0.4, 0.25, 260, 420)
        ],
    ],
    "9": [
        [arc(0.5, 0.3, 0.5, 0.3, 0, 365) + [(0.95, 0.6), (0.85, 1.0)]],
        [arc(0.5, 0.3, 0.5, 0.3, 10, 370) + [(0.98, 0.3), (0.98, 1.0)]],
    ],
}


def pen_digit(digit: str, height: int, pen: float, rng: Rng) -> np.ndarray:
    """A digit drawn as strokes with a round pen: ink in [0, 1], tight around its strokes."""
    strokes = PEN_DIGITS[digit][rng.integers(len(PEN_DIGITS[digit]))]
    width = height * (0.15 if digit == "1" else rng.uniform(0.5, 0.8))
    scale = 3  # drawn larger, then shrunk: anti-aliased edges, as a real pen
    margin = pen + 4
    size = (int(width + 2 * margin) * scale, int(height + 2 * margin) * scale)
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    wobble = rng.normal(0, 0.03, (2,))  # the hand's own drift within the digit
    for stroke in strokes:
        points = np.array(stroke, dtype=float)
        points += rng.normal(0, 0.025, points.shape) + wobble
        xy = [((margin + x * width) * scale, (margin + y * height) * scale) for x, y in points]
        pen_line(draw, xy, pen * scale, ink=255)
    small = canvas.resize((size[0] // scale, size[1] // scale), Image.BOX)
    return _tight(np.asarray(small, dtype=np.float32) / 255)


# --- MNIST digits, scaled ----------------------------------------------------------------


def mnist_digit(pixels: np.ndarray, height: int, pen: float | None = None) -> np.ndarray:
    """An MNIST digit scaled so that its ink is `height` pixels tall; pen thins or thickens it."""
    ink = _tight(pixels.astype(np.float32) / 255)
    scale = height / ink.shape[0]
    size = (max(1, round(ink.shape[1] * scale)), max(1, height))
    big = np.asarray(Image.fromarray(ink, "F").resize(size, Image.BICUBIC)).clip(0, 1)
    if pen is not None:  # a pen of another width: the stroke's middle line, redrawn
        stroke = 2.2 * scale  # MNIST's strokes are about 2.2 pixels wide at 28x28
        if pen < stroke:
            big = ndimage.grey_erosion(big, size=max(1, round((stroke - pen) / 2)) * 2 + 1)
        elif pen > stroke:
            big = ndimage.grey_dilation(big, size=round((pen - stroke) / 2) * 2 + 1)
        big = big / max(float(big.max()), 1e-6)  # a thin pen writes as dark as a thick one
    return _tight(big)


def picture_of(ink: np.ndarray) -> Image.Image:
    """Ink (0-1) as a person's clean scan: dark ink on white, 8-bit grey."""
    return Image.fromarray(np.round(255 * (1 - ink.clip(0, 1))).astype(np.uint8))


def _tight(ink: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(ink > 0.05)
    if len(rows) == 0:
        return ink[:1, :1]
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _shear(ink: np.ndarray, slant: float) -> np.ndarray:
    """Slant: the top moves right by `slant` times the height."""
    height, width = ink.shape
    extra = int(abs(slant) * height) + 1
    padded = np.pad(ink, ((0, 0), (extra, extra)))
    # x_in = x_out + slant * (y - height) : the bottom stays, the top leans.
    matrix = np.array([[1, 0], [-slant, 1]])
    offset = np.array([0, slant * height])
    return _tight(ndimage.affine_transform(padded, matrix, offset=offset, order=1))


# --- composing a number ------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """How one set's numbers are written; each range is drawn from per number or digit."""

    lengths: tuple[int, int]  # digits per number, inclusive
    height: tuple[int, int]  # typical digit height in pixels, per number
    size_spread: float  # each digit's height varies by up to this share
    gap: tuple[float, float]  # space between digits, in digit heights (< 0: overlap)
    pen: str = "mnist"  # "mnist": MNIST digits; "thick", "thin": pen strokes of that kind
    pen_share: float = 1.0  # with pen strokes: the share of digits drawn, others MNIST
    slant: float = 0.0  # up to this much lean, per number
    baseline: float = 0.04  # the writing line wanders by this share of the height
    specks: int = 0  # up to this many specks of dirt
    inverted: float = 0.0  # share of numbers written light on dark
    jpeg: float = 0.0  # share of numbers saved as JPEG
    paper: bool = False  # grey, lined or unevenly lit paper, a little blur and noise
    photo: bool = False  # a colour photo of a sheet on a table (synthetic/numbers.py: _photograph)
    # Fast writing: each digit slid left until its ink touches its neighbour's, then on
    # into it by this many digit heights (a tail under the next digit, loops crossing).
    touch: tuple[float, float] | None = None


SETS = {
    # MNIST digits of natural size differences on one line of a wide canvas.
    "canvases": Style(lengths=(1, 7), height=(50, 160), size_spread=0.45, gap=(-0.05, 0.8)),
    # Pen strokes with thick pens, as in the drawing app, sizes varying within a number.
    "drawn": Style(lengths=(1, 8), height=(60, 170), size_spread=0.45, gap=(0.0, 0.7), pen="thick"),
    # Thin pens, small digits, tight gaps, specks, a third light on dark, a third JPEG.
    "hard": Style(
        lengths=(2, 9),
        height=(18, 70),
        size_spread=0.45,
        gap=(-0.02, 0.35),
        pen="thin",
        pen_share=0.5,
        specks=6,
        inverted=1 / 3,
        jpeg=1 / 3,
    ),
    # Written fast: every neighbour touches or overlaps the next (by up to a fifth of its
    # height: a tail under the next digit, loops crossing), one stroke joins them.
    "touching": Style(
        lengths=(2, 6), height=(50, 140), size_spread=0.2, gap=(0.0, 0.0), touch=(0.0, 0.2)
    ),
    # Slanted writing, either way.
    "slanted": Style(
        lengths=(2, 7), height=(50, 140), size_spread=0.3, gap=(0.05, 0.5), slant=0.35
    ),
    # Photos of paper: grey, lined or unevenly lit, blurred a little, JPEG.
    "paper": Style(
        lengths=(2, 7),
        height=(40, 120),
        size_spread=0.3,
        gap=(0.05, 0.6),
        pen="thick",
        pen_share=0.5,
        jpeg=1.0,
        paper=True,
    ),
    # Phone photos of a number written on a sheet of paper lying tilted on a table:
    # tinted paper, uneven light, the sheet's edge, ruled or squared lines, blue or dark ink.
    "photo": Style(
        lengths=(2, 7),
        height=(40, 130),
        size_spread=0.3,
        gap=(0.05, 0.6),
        pen="ballpoint",
        pen_share=0.6,
        jpeg=1.0,
        photo=True,
    ),
}


def make_number(style: Style, images: np.ndarray, labels: np.ndarray, rng: Rng) -> Number:
    """One written number of the given style, with its digits."""
    length = int(rng.integers(style.lengths[0], style.lengths[1] + 1))
    height = rng.uniform(*style.height)
    gap = rng.uniform(*style.gap)
    slant = rng.uniform(-style.slant, style.slant)
    pen = _pen_width(style.pen, height, rng)
    digits, inks = "", []
    for _ in range(length):
        index = int(rng.integers(len(labels)))
        digit = str(labels[index])
        size = max(12, round(height * (1 + rng.uniform(-style.size_spread, style.size_spread / 2))))
        if style.pen != "mnist" and rng.random() < style.pen_share:
            ink = pen_digit(digit, size, pen, rng)
        else:
            ink = mnist_digit(images[index], size, pen if style.pen == "thin" else None)
        if slant:
            ink = _shear(ink, slant + rng.normal(0, 0.05))
        digits += digit
        inks.append(ink)
    if style.touch:
        ink, _ = compose_touching(inks, height, style.touch, style.baseline, rng)
    else:
        ink, _ = compose(inks, height, gap, style.baseline, rng)
    ink = _add_specks(ink, style.specks, rng)
    return Number(_encode(ink, style, rng), digits)


def _pen_width(kind: str, height: float, rng: Rng) -> float:
    if kind == "thick":
        return rng.uniform(0.07, 0.16) * height
    if kind == "thin":
        return rng.uniform(1.0, 2.5)
    if kind == "ballpoint":  # a pen's line in a photo: a few pixels, thicker on big digits
        return max(2.0, rng.uniform(0.04, 0.1) * height)
    return 0.0


Boxes = list[tuple[int, int, int, int]]  # each digit's ink on the canvas: x, y, width, height


def compose(inks: list[np.ndarray], height: float, gap: float, wander: float, rng: Rng):
    """The digits side by side on one writing line, on a canvas with a margin; and where
    each one lies."""
    margin = int(rng.uniform(0.3, 1.5) * height) + 10
    lefts, x = [], margin
    for ink in inks:
        lefts.append(x)
        # Each gap varies around the number's own: people are not regular.
        x += ink.shape[1] + int(height * max(gap + rng.normal(0, 0.05), -0.15))
    tallest = max(ink.shape[0] for ink in inks)
    width = max(x + margin, int(4 * height))
    canvas = np.zeros((int(tallest + 2 * margin + height * 0.5), width), dtype=np.float32)
    line = margin + tallest
    boxes: Boxes = []
    for left, ink in zip(lefts, inks, strict=True):
        bottom = line + int(rng.normal(0, wander) * height)
        top = max(0, bottom - ink.shape[0])
        patch = canvas[top : top + ink.shape[0], left : left + ink.shape[1]]
        np.maximum(patch, ink[: patch.shape[0], : patch.shape[1]], out=patch)
        boxes.append((left, top, *patch.shape[::-1]))
    return canvas, boxes


def compose_touching(inks, height: float, overlap: tuple[float, float], wander: float, rng):
    """The digits on one wandering line, each slid left until its ink touches the ink
    before it (8-connected, as a reader sees strokes join), then on by `overlap` of its
    height: how fast writing runs a tail under the next digit and crosses loops; and
    where each one lies."""
    margin = int(rng.uniform(0.3, 1.5) * height) + 10
    tallest = max(ink.shape[0] for ink in inks)
    line = margin + tallest
    rows = int(tallest + 2 * margin + height * 0.5)
    width = sum(ink.shape[1] for ink in inks) + 2 * margin
    canvas = np.zeros((rows, max(width, int(4 * height))), dtype=np.float32)
    right = np.full(rows, -(10**6))  # the rightmost ink of each row so far
    boxes: Boxes = []
    for ink in inks:
        bottom = line + int(rng.normal(0, wander) * height)
        top = max(0, bottom - ink.shape[0])
        ink = ink[: rows - top]
        solid = ink > TOUCH_INK
        filled = solid.any(axis=1)
        first = np.where(filled, solid.argmax(axis=1), 10**6)  # its leftmost ink per row
        near = ndimage.maximum_filter1d(right, 3)[top : top + ink.shape[0]]  # rows beside too
        left = int(max(near - first + 1)) if (near > 0).any() else margin
        left = max(0, left - int(rng.uniform(*overlap) * ink.shape[0]))
        patch = canvas[top : top + ink.shape[0], left : left + ink.shape[1]]
        np.maximum(patch, ink[:, : patch.shape[1]], out=patch)
        boxes.append((left, top, *patch.shape[::-1]))
        last = np.where(filled, ink.shape[1] - 1 - solid[:, ::-1].argmax(axis=1), -(10**6))
        right[top : top + ink.shape[0]] = np.maximum(right[top : top + ink.shape[0]], left + last)
    used = np.flatnonzero(canvas.any(axis=0))
    return canvas[:, : max(used[-1] + margin, int(4 * height))], boxes


def _add_specks(ink: np.ndarray, count: int, rng: Rng) -> np.ndarray:
    for _ in range(int(rng.integers(0, count + 1))):
        y, x = rng.integers(ink.shape[0]), rng.integers(ink.shape[1])
        r = rng.uniform(0.5, 2.0)
        ink[max(0, int(y - r)) : int(y + r) + 1, max(0, int(x - r)) : int(x + r) + 1] = 1.0
    return ink


def _encode(ink: np.ndarray, style: Style, rng: Rng) -> bytes:
    """The picture as a person's file: ink on paper, PNG or JPEG."""
    if style.photo:
        return _jpeg(Image.fromarray(np.round(_photograph(ink, rng) * 255).astype(np.uint8)), rng)
    if style.paper:
        gray = _on_paper(ink, rng)
    else:
        gray = 1 - ink
    if rng.random() < style.inverted:
        gray = 1 - gray
    image = Image.fromarray(np.round(gray.clip(0, 1) * 255).astype(np.uint8))
    buffer = io.BytesIO()
    if rng.random() < style.jpeg:
        image.save(buffer, "JPEG", quality=int(rng.integers(30, 80)))
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()


def _on_paper(ink: np.ndarray, rng: Rng) -> np.ndarray:
    """Ink of a pen or pencil on grey, lined or unevenly lit paper, as a phone sees it:
    the lines 1-2 pixels wide and a little tilted (a sheet is never quite straight),
    sometimes squares, sometimes a soft shadow across the page."""
    height, width = ink.shape
    paper = rng.uniform(0.7, 0.95)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    light = 1 + rng.uniform(-0.15, 0.15) * x + rng.uniform(-0.15, 0.15) * y
    if rng.random() < 0.25:  # the soft shadow of a hand or the phone
        angle = rng.uniform(0, 2 * np.pi)
        along = np.cos(angle) * x + np.sin(angle) * y
        light *= 1 - rng.uniform(0.1, 0.3) / (1 + np.exp(-(along - along.mean()) / 0.05))
    background = paper * light + rng.normal(0, 0.02, ink.shape)
    if rng.random() < 0.5:  # ruled lines, fainter than the ink, at the page's tilt
        spacing = rng.uniform(0.15, 0.3) * height + 8
        tilt = np.radians(rng.uniform(-3, 3))
        rows, cols = np.mgrid[0:height, 0:width]
        across = rows * np.cos(tilt) - cols * np.sin(tilt) + rng.uniform(0, spacing)
        lines = _lines(across, spacing, rng.uniform(1.0, 2.0))
        if rng.random() < 0.3:  # squared paper
            along = rows * np.sin(tilt) + cols * np.cos(tilt) + rng.uniform(0, spacing)
            lines = np.maximum(lines, _lines(along, spacing, rng.uniform(1.0, 2.0)))
        background -= rng.uniform(0.08, 0.15) * lines
    strength = rng.uniform(0.5, 0.85)  # pencil to ballpoint
    gray = background * (1 - strength * ink)
    return ndimage.gaussian_filter(gray, 0.7)


# --- photos of paper ----------------------------------------------------------------------


MAX_PHOTO = (480, 1280)  # rows, columns: a phone's crop of a line of writing

PAPERS = {  # reflectance per channel, before the light: what people write on
    "white": (1.0, 1.0, 1.0),
    "grey": (0.9, 0.9, 0.9),
    "cream": (1.0, 0.96, 0.84),
    "bluish": (0.92, 0.96, 1.0),
}
TABLES = {  # the surface under the sheet: darker than paper, often coloured
    "wood": (0.55, 0.36, 0.22),
    "dark wood": (0.32, 0.2, 0.12),
    "grey": (0.42, 0.43, 0.45),
    "black": (0.16, 0.16, 0.17),
    "green": (0.25, 0.38, 0.3),
}
INKS = {  # a pen's colour at full coverage
    "black": (0.1, 0.1, 0.12),
    "grey": (0.25, 0.25, 0.27),
    "blue": (0.12, 0.18, 0.52),
}


def _photograph(ink: np.ndarray, rng: Rng) -> np.ndarray:
    """Ink on a sheet of paper lying tilted on a table, as a phone photographs it: RGB in
    [0, 1]. The sheet may show its edge or corner; the digits stay on it."""
    ink = _fit(ink, rng)
    height, width = _photo_size(ink.shape, rng)
    angle = np.radians(rng.uniform(-6, 6))
    # Sheet coordinates (u along the rules, v across them) of every picture pixel, turned
    # about the picture's centre; the ink lies at the centre of the sheet's writing area.
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height / 2 + rng.normal(0, 0.03 * height), width / 2 + rng.normal(0, 0.03 * width)
    cos, sin = np.cos(angle), np.sin(angle)
    u = cos * (x - cx) + sin * (y - cy)
    v = -sin * (x - cx) + cos * (y - cy)
    written = ndimage.map_coordinates(
        ink, [v + ink.shape[0] / 2, u + ink.shape[1] / 2], order=1, cval=0.0
    )
    reflectance = _sheet_on_table(u, v, ink.shape, (height, width, angle), rng)
    reflectance = _rules(reflectance, u, v, ink.shape, rng)
    colour = np.array(INKS[rng.choice(list(INKS))]) * rng.uniform(0.8, 1.2)
    strength = rng.uniform(0.75, 1.0)  # a ballpoint's stroke is not always fully dark
    cover = (strength * written)[..., None]
    picture = reflectance * (1 - cover) + colour * cover
    picture = picture * _light(height, width, rng)[..., None]
    picture = ndimage.gaussian_filter(picture, (rng.uniform(0.4, 1.2),) * 2 + (0,))
    picture += rng.normal(0, rng.uniform(0.008, 0.035), picture.shape)  # sensor noise
    return picture.clip(0, 1)


def _fit(ink: np.ndarray, rng) -> np.ndarray:
    """The written line, shrunk if needed so that it fits a phone's crop with room around."""
    ink = _tight(ink)
    scale = min(1.0, 0.8 * MAX_PHOTO[1] / ink.shape[1], 0.6 * MAX_PHOTO[0] / ink.shape[0])
    if scale < 1:
        size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
        ink = np.asarray(Image.fromarray(ink, "F").resize(size, Image.BILINEAR)).clip(0, 1)
    return np.pad(ink, 2)


def _photo_size(ink_shape, rng) -> tuple[int, int]:
    """The picture: the ink's size turned by up to 6 degrees, plus a margin, at most 1280x480."""
    rows, cols = ink_shape
    turned = rows + 0.11 * cols  # sin(6 degrees) of the width adds to the height
    height = min(MAX_PHOTO[0], int(turned + rng.uniform(0.4, 2.5) * rows + 30))
    width = min(MAX_PHOTO[1], int(cols + rng.uniform(0.15, 0.9) * cols + 60))
    return height, width


def _sheet_on_table(u, v, ink_shape, frame, rng) -> np.ndarray:
    """The sheet's reflectance, or the table's where the sheet ends: in many pictures an
    edge or a corner of the sheet shows, never closer to the ink than a margin."""
    height, width, _ = frame
    paper = np.array(PAPERS[rng.choice(list(PAPERS))]) * rng.uniform(0.78, 1.0)
    rows, cols = ink_shape
    # Each side of the sheet: beyond the picture, or inside it between the ink and the
    # picture's edge (the far corner of the picture along that side is what shows).
    span_u = np.abs(u).max(), np.abs(v).max()
    sides = []
    for half, reach in ((cols / 2, span_u[0]), (rows / 2, span_u[1])):
        for _ in range(2):
            if rng.random() < 0.3:
                sides.append(rng.uniform(half + 15, max(half + 16, reach - 5)))
            else:
                sides.append(reach + 100)
    left, right, top, bottom = sides
    sheet = (u > -left) & (u < right) & (v > -top) & (v < bottom)
    # Soften the edge by a pixel (antialiasing) and let the sheet cast a thin shadow.
    inside = ndimage.gaussian_filter(sheet.astype(np.float32), 0.7)[..., None]
    table = _table(u.shape, rng)
    shadow = 1 - 0.35 * (ndimage.gaussian_filter(sheet.astype(np.float32), 4) - sheet)
    table = table * shadow.clip(0, 1)[..., None]
    return paper * inside + table * (1 - inside) + rng.normal(0, 0.01, (*u.shape, 3)) * inside


def _table(shape, rng) -> np.ndarray:
    """A table's surface: a colour with grain (wood) or a fine mottle."""
    colour = np.array(TABLES[rng.choice(list(TABLES))]) * rng.uniform(0.7, 1.1)
    height, width = shape
    grain = ndimage.gaussian_filter(rng.normal(0, 1, (height, width)), (0.5, 12))
    mottle = ndimage.gaussian_filter(rng.normal(0, 1, (height, width)), 3)
    texture = 1 + 0.08 * grain / max(grain.std(), 1e-6) + 0.05 * mottle / max(mottle.std(), 1e-6)
    return colour * texture[..., None]


def _rules(reflectance, u, v, ink_shape, rng) -> np.ndarray:
    """Ruled lines (a third of the sheets) or squares (some), faint blue or grey, at the
    sheet's tilt and across the digits; on ruled sheets sometimes a red margin line."""
    kind = rng.random()
    if kind > 0.5:
        return reflectance
    colour = np.array([(0.55, 0.68, 0.9), (0.62, 0.62, 0.64)][rng.integers(2)])
    depth = rng.uniform(0.35, 0.8)  # how much of the line's colour shows: faint to firm
    rows = ink_shape[0]
    if kind < 0.33:  # ruled
        spacing = rng.uniform(0.35, 0.8) * rows
        lines = _lines(v + rng.uniform(0, spacing), spacing, rng.uniform(1.0, 2.5))
        reflectance = _draw(reflectance, lines * depth, colour)
        if rng.random() < 0.4:
            margin = -ink_shape[1] / 2 - rng.uniform(20, 120)
            line = (1 - np.abs(u - margin) / rng.uniform(1.0, 1.8)).clip(0, 1)
            reflectance = _draw(reflectance, line * depth, np.array((0.9, 0.4, 0.42)))
    else:  # squared
        spacing = rng.uniform(0.18, 0.4) * rows + 8
        width = rng.uniform(0.8, 1.6)
        lines = np.maximum(
            _lines(v + rng.uniform(0, spacing), spacing, width),
            _lines(u + rng.uniform(0, spacing), spacing, width),
        )
        reflectance = _draw(reflectance, lines * depth * 0.7, colour)
    return reflectance


def _lines(position, spacing, width) -> np.ndarray:
    """Coverage of lines of the given width every `spacing`, antialiased."""
    distance = np.abs((position + spacing / 2) % spacing - spacing / 2)
    return (width / 2 + 0.5 - distance).clip(0, 1)


def _draw(reflectance, coverage, colour) -> np.ndarray:
    cover = coverage[..., None]
    return reflectance * (1 - cover) + reflectance * colour * cover


def _light(height, width, rng) -> np.ndarray:
    """Light that changes across the sheet: a gradient, lighter or darker corners, and
    sometimes the soft shadow of the phone or a hand."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / max(height, width) - 0.5 * height / max(height, width), x / max(height, width) - 0.5
    light = 1 + rng.uniform(-0.25, 0.25) * x + rng.uniform(-0.25, 0.25) * y
    light += rng.uniform(-0.3, 0.2) * (x**2 + y**2)  # vignette or lighter corners
    if rng.random() < 0.3:
        angle = rng.uniform(0, 2 * np.pi)
        along = np.cos(angle) * x + np.sin(angle) * y - rng.uniform(-0.3, 0.3)
        soft = rng.uniform(0.03, 0.12)
        light *= 1 - rng.uniform(0.15, 0.4) / (1 + np.exp(-along / soft))
    return light * rng.uniform(0.85, 1.1)


def _jpeg(image: Image.Image, rng: Rng) -> bytes:
    """A phone's JPEG: quality from poor to good."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(40, 92)))
    return buffer.getvalue()


def make_sets(
    images: np.ndarray, labels: np.ndarray, seed: int, count: int, names=None
) -> dict[str, list[Number]]:
    """`count` numbers of each set (or of the sets named), the same for the same seed."""
    sets = {}
    for offset, (name, style) in enumerate(SETS.items()):
        if names and name not in names:
            continue
        rng = np.random.default_rng([seed, offset])
        sets[name] = [make_number(style, images, labels, rng) for _ in range(count)]
    return sets


# --- scoring -----------------------------------------------------------------------------


def score(truths: list[str], readings: list[str]) -> dict:
    """Whole numbers right, digits right where the count is right, and the kinds of miss."""
    right = sum(t == r for t, r in zip(truths, readings, strict=True))
    same_count = [(t, r) for t, r in zip(truths, readings, strict=True) if len(t) == len(r)]
    digits = sum(len(t) for t, _ in same_count)
    digits_right = sum(a == b for t, r in same_count for a, b in zip(t, r, strict=True))
    return {
        "numbers": len(truths),
        "right": right / max(len(truths), 1),
        "digits_right": digits_right / max(digits, 1),
        "too_few": sum(len(r) < len(t) for t, r in zip(truths, readings, strict=True)),
        "too_many": sum(len(r) > len(t) for t, r in zip(truths, readings, strict=True)),
        "wrong_digit": sum(len(t) == len(r) and t != r for t, r in same_count),
    }
