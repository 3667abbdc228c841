"""Find the handwritten digits in a picture and make each one look like an MNIST digit.

MNIST's digits were made so: each digit's ink cropped, scaled so that its longer side is
20 pixels (keeping the aspect ratio, anti-aliased), and placed in a 28x28 field with its
centre of mass at the centre; light ink on black. This module does the same to any
picture, so that the model sees drawn digits the way it saw its training data. It is the
only definition of that normalisation: it ships inside the registered model.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

MIN_CONTRAST = 0.2  # weaker ink than this (0-1) is paper texture or noise: no digit
INK_THRESHOLD = 0.1  # of the strongest ink: MNIST's digits then span exactly 20 pixels
MERGE_OVERLAP = 0.5  # strokes overlapping this much horizontally belong to one digit
SPECK_AREA = 0.02  # strokes smaller than this part of the largest stroke's area ...
SPECK_SIZE = 0.04  # ... or than this part of the picture's shorter side are specks
TARGET_STROKE = 2.5  # MNIST-like stroke width, in pixels of the 20-pixel box


@dataclass(frozen=True)
class Digit:
    """One digit found in a picture: its box in picture pixels and its 28x28 MNIST form."""

    x: int
    y: int
    width: int
    height: int
    pixels: np.ndarray  # (28, 28) uint8, light ink on black


def ink_of(image: Image.Image) -> np.ndarray:
    """Ink strength in [0, 1] per pixel, whatever the colours; 0 is background."""
    image = ImageOps.exif_transpose(image)
    if "A" in image.getbands() or "transparency" in image.info:
        # A transparent picture: what is painted is the ink.
        return np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.float32) / 255
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))  # the paper is what surrounds the digits
    ink = background - gray if background > 0.5 else gray - background
    return np.clip(ink, 0, 1)


def find_digits(image: Image.Image) -> list[Digit]:
    """The digits of a picture, left to right; none for a picture without ink."""
    ink = ink_of(image)
    strongest = float(ink.max(initial=0))
    if strongest < MIN_CONTRAST:
        return []
    ink = ink / strongest
    labels, count = ndimage.label(ink > INK_THRESHOLD, structure=np.ones((3, 3)))
    boxes = ndimage.find_objects(labels)
    areas = ndimage.sum_labels(np.ones_like(ink), labels, range(1, count + 1))
    min_size = SPECK_SIZE * min(ink.shape)
    strokes = [
        i
        for i, (rows, cols) in enumerate(boxes)
        if areas[i] >= SPECK_AREA * areas.max() and max(_length(rows), _length(cols)) >= min_size
    ]
    digits = []
    for members in _group_strokes([boxes[i] for i in strokes]):
        members = [strokes[i] for i in members]
        rows, cols = _union(boxes[i] for i in members)
        # One pixel more on each side keeps the faint anti-aliased edge of the strokes.
        outer = _grow(rows, ink.shape[0]), _grow(cols, ink.shape[1])
        mask = ndimage.binary_dilation(np.isin(labels[outer], [i + 1 for i in members]))
        pixels = to_mnist(np.where(mask, ink[outer], 0), mask, max(_length(rows), _length(cols)))
        digits.append(Digit(cols.start, rows.start, _length(cols), _length(rows), pixels))
    return sorted(digits, key=lambda d: d.x)


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


def _union(boxes) -> tuple[slice, slice]:
    boxes = list(boxes)
    rows = slice(min(b[0].start for b in boxes), max(b[0].stop for b in boxes))
    cols = slice(min(b[1].start for b in boxes), max(b[1].stop for b in boxes))
    return rows, cols


def _same_digit(a: tuple[slice, slice], b: tuple[slice, slice]) -> bool:
    """Whether two strokes (or groups) are parts of one digit."""
    (rows_a, cols_a), (rows_b, cols_b) = a, b
    overlap = min(cols_a.stop, cols_b.stop) - max(cols_a.start, cols_b.start)
    if overlap >= MERGE_OVERLAP * min(_length(cols_a), _length(cols_b)):
        return True  # stacked: the bar and body of a 5, the two strokes of a 4
    # A shorter stroke close beside a taller one, the two still digit-shaped together:
    # a 4 whose upright does not cross its bar, the flag of a 5 drawn off to the side.
    tall, short = max(_length(rows_a), _length(rows_b)), min(_length(rows_a), _length(rows_b))
    rows, cols = _union([a, b])
    return short < 0.7 * tall and -overlap <= 0.3 * tall and _length(cols) <= 1.6 * _length(rows)


def _group_strokes(boxes: list[tuple[slice, slice]]) -> list[list[int]]:
    """Group the strokes of each digit: the parts of a 4, 5 or 7 drawn apart."""
    groups = [[i] for i in range(len(boxes))]
    merged = True
    while merged:
        merged = False
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                box_a = _union(boxes[i] for i in groups[a])
                box_b = _union(boxes[i] for i in groups[b])
                if _same_digit(box_a, box_b):
                    groups[a] += groups.pop(b)
                    merged = True
                    break
            if merged:
                break
    return groups
