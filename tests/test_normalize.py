"""The normalisation shipped in the registered model, on synthetic drawings and real digits."""

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from serving.normalize import find_digits

# Digits as strokes in a unit box (x right, y down); each inner list is one pen stroke.
SHAPES = {
    "1": [[(0.5, 0.0), (0.5, 1.0)]],
    "7": [[(0.0, 0.0), (1.0, 0.0), (0.35, 1.0)]],
    "0": [[(0.5, 0.0), (1.0, 0.3), (1.0, 0.7), (0.5, 1.0), (0.0, 0.7), (0.0, 0.3), (0.5, 0.0)]],
    # Drawn in two strokes that do not touch:
    "4": [[(0.45, 0.0), (0.0, 0.6), (0.6, 0.6)], [(0.8, 0.0), (0.8, 1.0)]],
    "5": [[(0.2, 0.0), (0.1, 0.45), (0.8, 0.5), (0.8, 0.9), (0.1, 1.0)], [(0.45, 0.0), (1.0, 0.0)]],
}


def drawing(
    digits: str,
    size: tuple[int, int] = (800, 300),
    height: int = 180,
    width: int = 12,
    starts: list[int] | None = None,
    top: int = 60,
    ink: int = 0,
    paper: int = 255,
) -> Image.Image:
    """Digits drawn with a round pen on a canvas, as the drawing app makes them."""
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    starts = starts or [40 + i * int(height * 0.9) for i in range(len(digits))]
    for digit, left in zip(digits, starts, strict=True):
        box_width = 0.1 * height if digit == "1" else 0.6 * height
        for stroke in SHAPES[digit]:
            points = [(left + x * box_width, top + y * height) for x, y in stroke]
            draw.line(points, fill=ink, width=width, joint="curve")
            for x, y in (points[0], points[-1]):
                r = width / 2
                draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
    return image


def test_blank_pictures_have_no_digits():
    assert find_digits(Image.new("L", (800, 300), 255)) == []
    assert find_digits(Image.new("RGB", (28, 28), (0, 0, 0))) == []
    # Faint paper texture is not ink either.
    noise = np.random.default_rng(0).integers(235, 256, (300, 800), dtype=np.uint8)
    assert find_digits(Image.fromarray(noise)) == []


def test_several_digits_in_a_row_with_uneven_spacing_come_left_to_right():
    image = drawing("1704", starts=[40, 90, 330, 520])
    digits = find_digits(image)
    assert len(digits) == 4
    assert [d.x for d in digits] == sorted(d.x for d in digits)
    assert digits[0].x == pytest.approx(40 + 9 - 6, abs=3)  # the 1's stroke, minus half the pen


@pytest.mark.parametrize("digit", ["4", "5"])
def test_strokes_of_one_digit_are_grouped_though_they_do_not_touch(digit):
    image = drawing(digit)
    assert ndimage.label(np.asarray(image) < 128)[1] == 2  # two separate strokes ...
    [found] = find_digits(image)  # ... one digit
    assert found.height == pytest.approx(180 + 12, abs=3)


def test_specks_are_ignored():
    image = drawing("7")
    draw = ImageDraw.Draw(image)
    for x, y in [(600, 40), (700, 250), (20, 20)]:
        draw.ellipse((x, y, x + 4, y + 4), fill=0)
    [seven] = find_digits(image)
    assert seven.x > 30


def mnist_like(pixels: np.ndarray) -> None:
    """What MNIST's own digits satisfy: longer side of the ink 20, centre of mass central."""
    assert pixels.shape == (28, 28) and pixels.dtype == np.uint8
    assert pixels.max() == 255
    rows, cols = np.nonzero(pixels > 25)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 == pytest.approx(20, abs=1)
    center = ndimage.center_of_mass(pixels.astype(float))
    assert center == pytest.approx((14, 14), abs=0.8)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # the default pen on the app's canvas
        {"width": 3},  # thin
        {"width": 30},  # thick
        {"height": 40, "width": 4, "top": 10},  # small
        {"height": 280, "top": 10},  # large
        {"starts": [700], "top": 5, "height": 100},  # off-centre, in a corner
        {"ink": 255, "paper": 0},  # light ink on a dark background
        {"ink": 90, "paper": 200},  # pencil on grey paper
    ],
)
def test_every_drawing_becomes_an_mnist_like_digit(kwargs):
    [seven] = find_digits(drawing("7", **kwargs))
    mnist_like(seven.pixels)
    reference = find_digits(drawing("7"))[0].pixels.astype(float)
    similarity = (
        np.sum(reference * seven.pixels) / np.linalg.norm(reference) / np.linalg.norm(seven.pixels)
    )
    assert similarity > 0.8


def test_inverted_colours_give_the_same_digit():
    dark_on_light = find_digits(drawing("0"))[0].pixels
    light_on_dark = find_digits(drawing("0", ink=255, paper=0))[0].pixels
    assert np.array_equal(dark_on_light, light_on_dark)


def test_thin_strokes_are_thickened_to_mnist_width():
    thin = find_digits(drawing("1", width=2))[0].pixels
    assert (thin > 127).sum(axis=1).max() >= 2  # a stroke, not a hairline


def test_colour_and_transparent_pictures():
    rgb = drawing("7").convert("RGB")
    assert len(find_digits(rgb)) == 1
    alpha = np.asarray(drawing("7")) < 128
    rgba = np.zeros((*alpha.shape, 4), dtype=np.uint8)
    rgba[alpha] = (0, 0, 255, 255)  # blue strokes on a transparent background
    assert len(find_digits(Image.fromarray(rgba, "RGBA"))) == 1


def test_mnist_digits_come_back_unchanged(mirror):
    """Already-normalised digits are not degraded: the same pixels, up to the contrast
    stretch that brings the strongest ink to 255 (a few grey levels)."""
    from pipeline.preprocess import IMAGES_MAGIC, read_idx

    images = read_idx(mirror / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, (10_000, 28, 28))
    for pixels in images[:500]:
        [digit] = find_digits(Image.fromarray(pixels))
        assert np.abs(digit.pixels.astype(int) - pixels).max() <= 5


def test_a_large_mnist_digit_normalises_back_to_itself(mirror):
    from pipeline.preprocess import IMAGES_MAGIC, read_idx

    pixels = read_idx(mirror / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, (10_000, 28, 28))[0]
    canvas = Image.new("L", (800, 300), 255)
    canvas.paste(Image.fromarray(255 - pixels).resize((252, 252), Image.BILINEAR), (500, 20))
    [digit] = find_digits(canvas)
    a, b = digit.pixels.astype(float), pixels.astype(float)
    assert np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b) > 0.9
