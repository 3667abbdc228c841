"""The normalisation and digit finding shipped in the registered model.

Normalisation alone (`candidates`) on synthetic drawings and real MNIST digits; reading
whole numbers (`find_digits`, which asks the network) with the champion trained in the
tests, on numbers written the way people write them: digits of different sizes, tight
or touching, with specks, and on a sample of the numbers benchmark.
"""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from digit_reader.normalize import candidates
from digit_reader.reading import find_digits
from pipeline.preprocess import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from synthetic.numbers import make_sets, score

from pictures import drawing, photo, written_fast


@pytest.fixture(scope="module")
def mnist_test(mirror) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST test digits (28x28 uint8) and their labels, read once."""
    images = read_idx(mirror / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, (10_000, 28, 28))
    labels = read_idx(mirror / "t10k-labels-idx1-ubyte.gz", LABELS_MAGIC, (10_000,))
    return images, labels


def whole(image: Image.Image):
    """The candidate digit made of all the ink of a picture."""
    page = candidates(image)
    return page.digits[page.runs.index((0, page.parts))]


def test_blank_pictures_have_no_digits():
    assert candidates(Image.new("L", (800, 300), 255)).digits == []
    assert candidates(Image.new("RGB", (28, 28), (0, 0, 0))).digits == []
    # Faint paper texture is not ink either.
    noise = np.random.default_rng(0).integers(235, 256, (300, 800), dtype=np.uint8)
    assert candidates(Image.fromarray(noise)).digits == []


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
    seven = whole(drawing("7", **kwargs))
    mnist_like(seven.pixels)
    reference = whole(drawing("7")).pixels.astype(float)
    similarity = (
        np.sum(reference * seven.pixels) / np.linalg.norm(reference) / np.linalg.norm(seven.pixels)
    )
    assert similarity > 0.8


def test_inverted_colours_give_the_same_digit():
    dark_on_light = whole(drawing("0")).pixels
    light_on_dark = whole(drawing("0", ink=255, paper=0)).pixels
    assert np.array_equal(dark_on_light, light_on_dark)


def test_unevenly_lit_and_ruled_paper_is_not_ink():
    """A photo of lined paper, darker on one side: the digit alone is found."""
    image = np.asarray(drawing("7", ink=60), dtype=np.float32)
    image = image * np.linspace(1.0, 0.75, image.shape[1])[None, :]  # a shadow to the right
    image[::40] -= 30  # ruled lines, fainter than the ink, across the whole page
    page = candidates(Image.fromarray(image.clip(0, 255).astype(np.uint8)))
    mnist_like(page.digits[page.runs.index((0, page.parts))].pixels)
    assert all(d.width < 200 and d.height < 220 for d in page.digits)  # no line, no shadow


def test_thin_strokes_are_thickened_to_mnist_width():
    thin = whole(drawing("1", width=2)).pixels
    assert (thin > 127).sum(axis=1).max() >= 2  # a stroke, not a hairline


def test_colour_and_transparent_pictures():
    rgb = drawing("7").convert("RGB")
    assert candidates(rgb).parts == 1
    alpha = np.asarray(drawing("7")) < 128
    rgba = np.zeros((*alpha.shape, 4), dtype=np.uint8)
    rgba[alpha] = (0, 0, 255, 255)  # blue strokes on a transparent background
    assert candidates(Image.fromarray(rgba, "RGBA")).parts == 1


def test_mnist_digits_come_back_unchanged(mnist_test):
    """Already-normalised digits are not degraded: the same pixels, up to the contrast
    stretch that brings the strongest ink to 255 (a few grey levels)."""
    images, _ = mnist_test
    for pixels in images[:500]:
        digit = whole(Image.fromarray(pixels))
        assert np.abs(digit.pixels.astype(int) - pixels).max() <= 5


def test_a_large_mnist_digit_normalises_back_to_itself(mnist_test):
    pixels = mnist_test[0][0]
    canvas = Image.new("L", (800, 300), 255)
    canvas.paste(Image.fromarray(255 - pixels).resize((252, 252), Image.BILINEAR), (500, 20))
    digit = whole(canvas)
    a, b = digit.pixels.astype(float), pixels.astype(float)
    assert np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b) > 0.9


# --- reading whole numbers, with the network --------------------------------------------


def read(image: Image.Image, classify) -> str:
    return "".join(str(p.argmax()) for _, p in find_digits(image, classify))


def test_a_blank_picture_reads_nothing(classify):
    assert find_digits(Image.new("L", (800, 300), 255), classify) == []


def test_several_digits_in_a_row_with_uneven_spacing_come_left_to_right(classify):
    digits = find_digits(drawing("1704", starts=[40, 90, 330, 520]), classify)
    assert len(digits) == 4
    assert [d.x for d, _ in digits] == sorted(d.x for d, _ in digits)
    assert digits[0][0].x == pytest.approx(40 + 9 - 6, abs=3)  # the 1's stroke, less half the pen


@pytest.mark.parametrize("digit", ["4", "5"])
def test_strokes_of_one_digit_are_grouped_though_they_do_not_touch(digit, classify):
    image = drawing(digit)
    assert ndimage.label(np.asarray(image) < 128)[1] == 2  # two separate strokes ...
    [(found, _)] = find_digits(image, classify)  # ... one digit
    assert found.height == pytest.approx(180 + 12, abs=3)


@pytest.mark.parametrize(
    "number, heights, starts",
    [
        ("26", [90, 200], [40, 110]),  # a small 2 written before a large 6
        ("251", [200, 100, 100], [40, 180, 260]),  # a small "51" after a large 2
        ("10", [180, 180], [60, 95]),  # a 1 close beside a 0
        ("4747", [200, 110, 160, 90], [40, 175, 260, 370]),  # four sizes, tight
    ],
)
def test_digits_of_different_sizes_close_together(number, heights, starts, classify):
    tops = [250 - height for height in heights]  # on one writing line
    assert read(drawing(number, height=heights, starts=starts, top=tops), classify) == number


def test_touching_digits_are_cut_apart(mnist_test, classify):
    """Two MNIST digits written so close that their strokes join: one stroke, two digits."""
    images, labels = mnist_test
    zero, four = images[labels == 0][0], images[labels == 4][0]
    ink = np.zeros((28, 50), dtype=np.uint8)
    ink[:, :28] = zero
    ink[:, 20:48] = np.maximum(ink[:, 20:48], four)  # overlapping boxes
    picture = Image.fromarray(255 - ink).resize((500, 280), Image.BILINEAR)
    assert candidates(picture).parts > 1  # the joined stroke is tried cut apart
    assert read(picture, classify) == "04"


def test_specks_are_left_out(classify):
    image = drawing("71", starts=[40, 200])
    draw = ImageDraw.Draw(image)
    for x, y in [(600, 40), (700, 250), (20, 20), (150, 200)]:
        draw.ellipse((x, y, x + 4, y + 4), fill=0)
    assert read(image, classify) == "71"


def test_most_written_numbers_of_the_benchmark_are_read_right(mnist_test, classify):
    """A sample of the numbers benchmark (synthetic/numbers.py): MNIST test digits of
    mixed sizes on one line, spacing from wide to touching, and digits drawn as pen
    strokes. Read with the small champion trained in the tests (about 96.5%), most whole
    numbers come out right, and the count of digits nearly always does: 4-8 misses in 100
    here, where the grouping by box geometry that this replaced missed the count of 33
    and 37, and read only 59% of the numbers right."""
    sets = make_sets(*mnist_test, seed=7, count=100, names=["canvases", "drawn"])
    for name, numbers in sets.items():
        readings = [read(Image.open(io.BytesIO(n.png)), classify) for n in numbers]
        result = score([n.digits for n in numbers], readings)
        assert result["right"] >= 0.7, (name, result)
        assert result["too_few"] + result["too_many"] <= 0.15 * len(numbers), (name, result)


def opened(picture: bytes) -> Image.Image:
    return Image.open(io.BytesIO(picture))


# --- photos of paper ---------------------------------------------------------------------


def test_a_photo_of_a_number_on_tilted_ruled_paper_with_the_table_in_a_corner(classify):
    """What a person takes with a phone: blue ink on cream ruled paper, the sheet turned
    by 4 degrees so that its corner and the table show, light falling off to one side."""
    assert read(opened(photo("3504", tilt=4, ruled=True, table=True)), classify) == "3504"


@pytest.mark.parametrize("tilt", [-3, 2.5])
def test_tilted_ruled_lines_are_not_ink(tilt, classify):
    """Lines crossing the digits at the sheet's tilt: taken out, the strokes joined again."""
    image = opened(photo("7219", tilt=tilt, ruled=True, ink=(30, 30, 30)))
    found = find_digits(image, classify)
    assert all(d.width < 150 and d.height < 200 for d, _ in found)  # no line in a digit
    assert read(image, classify) == "7219"


def test_lines_edges_and_tables_in_photos_of_the_benchmark_are_not_ink(mnist_test):
    """The photo set of the numbers benchmark (synthetic/numbers.py): sheets turned on
    tables, ruled and squared lines, shadows, blue ink, JPEG. What is left of a line, of
    the sheet's edge or of the table is a long stroke beside the digits, and joins them
    into one: in nearly no photo is a part of the ink longer than twice the parts'
    median height (3 of these 100; 11 when lines were cut out as a mask, not taken
    away by their strength)."""
    numbers = make_sets(*mnist_test, seed=7, count=100, names=["photo"])["photo"]
    with_long_parts = []
    for number in numbers:
        page = candidates(opened(number.png))
        parts = [
            d for (start, stop), d in zip(page.runs, page.digits, strict=True) if stop == start + 1
        ]
        height = np.median([d.height for d in parts])
        if any(max(d.width, d.height) > 2 * height for d in parts):
            with_long_parts.append(number.digits)
    assert len(with_long_parts) <= 4, with_long_parts


def test_the_table_in_a_corner_is_not_ink(classify):
    image = opened(photo("860", tilt=3, table=True))
    assert all(d.x + d.width < 900 for d, _ in find_digits(image, classify))  # none on the table
    assert read(image, classify) == "860"


def test_a_strip_of_a_sheet_on_a_mostly_dark_table_is_read(classify):
    """A torn-off strip of paper lying turned on a dark table that fills most of the
    picture: the writing, not the table, decides which way the ink goes."""
    image = opened(photo("5917", tilt=-2, strip=True))
    assert all(d.x + d.width < 780 for d, _ in find_digits(image, classify))  # none on the table
    assert read(image, classify) == "5917"


def test_a_strip_of_a_sheet_in_failing_light_is_still_dark_ink_on_paper(classify):
    """The light falls to half across the strip: the far side of the sheet is as dark as
    the table, and the grey levels alone (the old rule) took the ink for the paper."""
    image = opened(photo("5917", tilt=-2, strip=True, dim=0.5))
    assert read(image, classify) == "5917"


def test_squared_paper_on_a_strip_between_table_loses_its_columns(classify):
    """Squares on a strip of a sheet, the table above and below it: the columns run
    across the sheet, not across the picture (the old rule wanted 70% of the picture's
    height and read each column as a 1)."""
    image = opened(photo("9974", tilt=2, squared=True, strip=True, ink=(30, 30, 30)))
    assert read(image, classify) == "9974"


@pytest.mark.parametrize("tilt", [-1.5, 3])
def test_squared_paper_at_a_tilt_loses_its_columns_but_not_a_one(tilt, classify):
    """Squares at the sheet's tilt: their near-vertical lines cross the digits and run
    from top to bottom beside them; none is read as a 1, and a written 1 stays."""
    image = opened(photo("41703", tilt=tilt, squared=True, ink=(30, 30, 30)))
    found = find_digits(image, classify)
    assert all(d.height < 200 for d, _ in found)  # no line in a digit
    assert read(image, classify) == "41703"


def test_a_tail_under_the_next_digit_stays_with_its_digit(mnist_test, classify):
    """ "598" in one stroke, the 8's lower loop written over the foot of the 9's tail:
    no vertical line parts the 9 from the 8 (the old reader said "58"); a path that
    follows the strokes does."""
    picture = written_fast(mnist_test[0], [8038, 6409, 9116], overlap=0.1)
    assert ndimage.label(np.asarray(picture) < 128, structure=np.ones((3, 3)))[1] == 1
    assert read(picture, classify) == "598"


def test_overlapping_digits_are_parted(mnist_test, classify):
    """ "2046" in one stroke, the 2's base under the 0 and the 0's loop crossing the 4
    (the old reader said "206"): every digit is read, left to right."""
    picture = written_fast(mnist_test[0], [8438, 6567, 5023, 2826], overlap=0.15)
    assert ndimage.label(np.asarray(picture) < 128, structure=np.ones((3, 3)))[1] == 1
    digits = find_digits(picture, classify)
    assert "".join(str(p.argmax()) for _, p in digits) == "2046"
    assert [d.x for d, _ in digits] == sorted(d.x for d, _ in digits)
