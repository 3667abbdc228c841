"""Pictures people make, for the tests: numbers drawn with a round pen as the drawing
app draws them, and phone photos of numbers written on paper."""

import io

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from synthetic.numbers import PEN_DIGITS, compose_touching, mnist_digit, picture_of
from synthetic.pen import pen_line

# Digits as strokes in a unit box (x right, y down); each inner list is one pen stroke.
# The 4 and 5 of the benchmark are drawn in two strokes that do not touch.
SHAPES = {digit: ways[0] for digit, ways in PEN_DIGITS.items()}


def drawing(
    digits: str,
    size: tuple[int, int] = (800, 300),
    height: int | list[int] = 180,
    width: int = 12,
    starts: list[int] | None = None,
    top: int | list[int] = 60,
    ink: int = 0,
    paper: int = 255,
) -> Image.Image:
    """Digits drawn with a round pen on a canvas, as the drawing app makes them; height
    and top may differ per digit."""
    count = len(digits)
    heights = height if isinstance(height, list) else [height] * count
    tops = top if isinstance(top, list) else [top] * count
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    starts = starts or [40 + i * int(heights[0] * 0.9) for i in range(count)]
    for digit, left, high, y0 in zip(digits, starts, heights, tops, strict=True):
        box_width = 0.1 * high if digit == "1" else 0.6 * high
        for stroke in SHAPES[digit]:
            points = [(left + x * box_width, y0 + y * high) for x, y in stroke]
            pen_line(draw, points, width, ink)
    return image


def photo(
    digits: str,
    tilt: float = 0.0,
    ruled: bool = False,
    table: bool = False,
    ink: tuple = (25, 40, 140),
    squared: bool = False,
    strip: bool = False,
    dim: float = 0.8,
) -> bytes:
    """A phone photo of digits written on a sheet: cream paper lit unevenly, faint blue
    lines at the sheet's tilt (degrees) crossing the digits (squared: columns of lines
    too), the dark table in the bottom-right corner where the sheet ends (strip: all
    round a narrow strip of sheet, most of the picture), blue ink by default, the light
    falling to dim of its strength across the picture: the JPEG file's bytes."""
    cover = 1 - np.asarray(drawing(digits, size=(1000, 360), height=150, width=7, top=100)) / 255
    rows, cols = np.mgrid[0:360, 0:1000].astype(np.float32)
    t = np.radians(tilt)
    light = np.linspace(1.0, dim, 1000)[None, :] * np.linspace(0.95, 1.05, 360)[:, None]
    picture = np.ones((360, 1000, 3), np.float32) * (0.97, 0.93, 0.82)
    across = rows * np.cos(t) - cols * np.sin(t)  # across the sheet's lines, and along them
    along = cols * np.cos(t) + rows * np.sin(t)
    if ruled or squared:
        line = (1.6 - np.abs(across % 55 - 27)).clip(0, 1)  # 2 pixels wide, every 55
        if squared:  # columns every 55 too, through the digits
            line = np.maximum(line, (1.6 - np.abs(along % 55 - 27)).clip(0, 1))
        picture = picture * (1 - 0.5 * line[..., None] * (1 - np.array((0.5, 0.65, 0.9))))
    if table:  # the sheet's corner: its two edges turned by the tilt
        picture[(along > 930) | (across > 300)] = (0.35, 0.24, 0.15)
    if strip:  # a strip of the sheet, its four edges turned by the tilt
        picture[(along < 15) | (along > 780) | (across < 75) | (across > 280)] = (0.3, 0.2, 0.12)
    picture = picture * (1 - cover[..., None]) + np.array(ink) / 255 * cover[..., None]
    picture = ndimage.gaussian_filter(picture * light[..., None], (0.8, 0.8, 0))
    picture += np.random.default_rng(0).normal(0, 0.015, picture.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.round(picture.clip(0, 1) * 255).astype(np.uint8)).save(
        buffer, "JPEG", quality=75
    )
    return buffer.getvalue()


def written_fast(images: np.ndarray, indices: list[int], overlap: float) -> Image.Image:
    """MNIST test digits written as fast writing joins them (the benchmark's touching set):
    each slid left until its ink touches the one before, then on into it by overlap of
    its height, 120 pixels tall, on one line."""
    inks = [mnist_digit(images[i], 120) for i in indices]
    ink, _ = compose_touching(inks, 120, (overlap, overlap), 0.0, np.random.default_rng(1))
    return picture_of(ink)


def scrawl(seed: int) -> bytes:
    """A scrawl, not a digit: one stroke of the pen through 4 to 7 random points, as a
    PNG. The reader finds something in it, and is unsure what."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", (120, 120), 255)
    points = [tuple(rng.uniform(20, 100, 2)) for _ in range(rng.integers(4, 8))]
    pen_line(ImageDraw.Draw(image), points, 8, 0)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
