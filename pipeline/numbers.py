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
        draw.line(xy, fill=255, width=max(1, round(pen * scale)), joint="curve")
        r = pen * scale / 2
        for x, y in (xy[0], xy[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
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
    # Written fast: every neighbour touches or overlaps the next, one stroke joins them.
    "touching": Style(
        lengths=(2, 6), height=(50, 140), size_spread=0.2, gap=(0.0, 0.0), touch=(0.0, 0.1)
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
        ink = _compose_touching(inks, height, style.touch, style.baseline, rng)
    else:
        ink = _compose(inks, height, gap, style.baseline, rng)
    ink = _add_specks(ink, style.specks, rng)
    return Number(_encode(ink, style, rng), digits)


def _pen_width(kind: str, height: float, rng: Rng) -> float:
    if kind == "thick":
        return rng.uniform(0.07, 0.16) * height
    if kind == "thin":
        return rng.uniform(1.0, 2.5)
    return 0.0


def _compose(inks: list[np.ndarray], height: float, gap: float, wander: float, rng: Rng):
    """The digits side by side on one writing line, on a canvas with a margin."""
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
    for left, ink in zip(lefts, inks, strict=True):
        bottom = line + int(rng.normal(0, wander) * height)
        top = max(0, bottom - ink.shape[0])
        patch = canvas[top : top + ink.shape[0], left : left + ink.shape[1]]
        np.maximum(patch, ink[: patch.shape[0], : patch.shape[1]], out=patch)
    return canvas


def _compose_touching(inks, height: float, overlap: tuple[float, float], wander: float, rng):
    """The digits on one wandering line, each slid left until its ink touches the ink
    before it (8-connected, as a reader sees strokes join), then on by `overlap` of its
    height: how fast writing runs a tail under the next digit and crosses loops."""
    margin = int(rng.uniform(0.3, 1.5) * height) + 10
    tallest = max(ink.shape[0] for ink in inks)
    line = margin + tallest
    rows = int(tallest + 2 * margin + height * 0.5)
    width = sum(ink.shape[1] for ink in inks) + 2 * margin
    canvas = np.zeros((rows, max(width, int(4 * height))), dtype=np.float32)
    right = np.full(rows, -(10**6))  # the rightmost ink of each row so far
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
        last = np.where(filled, ink.shape[1] - 1 - solid[:, ::-1].argmax(axis=1), -(10**6))
        right[top : top + ink.shape[0]] = np.maximum(right[top : top + ink.shape[0]], left + last)
    used = np.flatnonzero(canvas.any(axis=0))
    return canvas[:, : max(used[-1] + margin, int(4 * height))]


def _add_specks(ink: np.ndarray, count: int, rng: Rng) -> np.ndarray:
    for _ in range(int(rng.integers(0, count + 1))):
        y, x = rng.integers(ink.shape[0]), rng.integers(ink.shape[1])
        r = rng.uniform(0.5, 2.0)
        ink[max(0, int(y - r)) : int(y + r) + 1, max(0, int(x - r)) : int(x + r) + 1] = 1.0
    return ink


def _encode(ink: np.ndarray, style: Style, rng: Rng) -> bytes:
    """The picture as a person's file: ink on paper, PNG or JPEG."""
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
    """Ink of a pen or pencil on grey, lined or unevenly lit paper, as a phone sees it."""
    height, width = ink.shape
    paper = rng.uniform(0.7, 0.95)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    light = 1 + rng.uniform(-0.15, 0.15) * x + rng.uniform(-0.15, 0.15) * y
    background = paper * light + rng.normal(0, 0.02, ink.shape)
    if rng.random() < 0.5:  # ruled lines, fainter than the ink
        spacing = int(rng.uniform(0.15, 0.3) * height) + 8
        background[int(rng.integers(spacing)) :: spacing] -= rng.uniform(0.08, 0.15)
    strength = rng.uniform(0.5, 0.85)  # pencil to ballpoint
    gray = background * (1 - strength * ink)
    return ndimage.gaussian_filter(gray, 0.7)


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
