"""The drawing app in a real Tk window on Xvfb, driven by real pointer and key events."""

import base64
import io
import os
import signal
import subprocess
import sys
import time
import tkinter as tk
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageGrab
from scipy import ndimage

from core import feedback
from digit_reader.contract import read_model
from gui.app import App
from gui.readers import Endpoint, LocalModel
from synthetic.numbers import PEN_DIGITS

from helpers import MODEL_NAME, free_port, serve, stage_env, store
from pictures import photo

pytestmark = pytest.mark.slow  # trains models or starts services: `make test` only

# Digits as pen strokes in a unit box (x right, y down), as the numbers benchmark draws them.
STROKES = {digit: ways[0] for digit, ways in PEN_DIGITS.items()}
LEFT = {"1": 100, "7": 300, "0": 500}  # where each digit is drawn, in canvas pixels


class Window:
    """The app in a real window, and a hand that moves the pointer with xdotool."""

    def __init__(self, reader, feedback_dir: Path):
        self.root = tk.Tk()
        self.app = App(self.root, reader, feedback_dir)
        self.root.update()

    def wait(self, condition, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            self.root.update()
            time.sleep(0.02)

    def xdotool(self, *args) -> None:
        subprocess.run(["xdotool", *map(str, args)], check=True)
        self.root.update()  # handle each event as a user's pointer would produce it

    def stroke(self, points: list[tuple[int, int]]) -> None:
        canvas = self.app.canvas.winfo_id()
        self.xdotool("mousemove", "--window", canvas, *points[0])
        self.xdotool("mousedown", 1)
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            for step in range(1, 6):
                x, y = x0 + (x1 - x0) * step / 5, y0 + (y1 - y0) * step / 5
                self.xdotool("mousemove", "--window", canvas, round(x), round(y))
        self.xdotool("mouseup", 1)

    def draw(self, digits: str) -> None:
        for digit in digits:
            self.write(digit, LEFT[digit], top=60, height=180)

    def write(self, digit: str, left: int, top: int, height: int) -> None:
        """One digit, its strokes in a box `height` tall whose top left is (left, top)."""
        width = 0.11 * height if digit == "1" else 0.6 * height
        for stroke in STROKES[digit]:
            self.stroke([(round(left + x * width), round(top + y * height)) for x, y in stroke])

    def key(self, name: str) -> None:
        self.xdotool("key", name)

    def click_label(self, number: int) -> None:
        """Click the label the app shows above digit `number` (from 0) of its reading."""
        [label] = self.app.canvas.find_withtag(f"label&&digit-{number}")
        x0, y0, x1, y1 = self.app.canvas.bbox(label)
        self.xdotool(
            "mousemove", "--window", self.app.canvas.winfo_id(), (x0 + x1) // 2, (y0 + y1) // 2
        )
        self.xdotool("click", 1)

    def read(self) -> str:
        """Press Return, and wait for what the model reads (in the app's own thread)."""
        self.key("Return")
        self.wait(lambda: not self.app.reading)
        self.root.update()
        return self.number()

    def boxes(self) -> list[list[float]]:
        return [self.app.canvas.coords(i) for i in self.app.canvas.find_withtag("box")]

    def number(self) -> str:
        return self.app.number["text"]

    def close(self) -> None:
        self.root.destroy()


@pytest.fixture
def window(display, work, tmp_path):
    os.environ["MLFLOW_TRACKING_URI"] = store(work)
    window = Window(LocalModel(f"models:/{MODEL_NAME}/1"), tmp_path / "feedback")
    window.app.auto.set(False)  # each test presses Recognise itself, unless it tests this
    window.wait(lambda: window.app.ready)
    yield window
    window.close()
    del os.environ["MLFLOW_TRACKING_URI"]


def test_status_names_the_model(window):
    assert window.app.status["text"] == f"model {MODEL_NAME} version 1, in process"


def test_a_number_drawn_by_hand_is_read_with_a_box_per_digit(window):
    window.draw("170")
    assert window.read() == "170"
    boxes = window.boxes()
    assert len(boxes) == 3
    for (x0, y0, x1, y1), digit in zip(boxes, "170", strict=True):
        assert x0 < LEFT[digit] + 10 < x1  # the box is around the digit drawn there
        assert y0 < 60 and 240 < y1


def test_a_small_digit_written_before_a_large_one_is_read_as_two(window):
    window.write("2", left=100, top=150, height=90)  # both end on one writing line
    window.write("6", left=175, top=40, height=200)
    assert window.read() == "26"
    (x0, y0, x1, _), (x2, y2, x3, _) = window.boxes()
    assert x0 < 100 < x1 < 175 and 160 < x2 < 175 < x3  # a box around each digit drawn
    assert y0 > y2 + 80  # the 2 half as tall as the 6


def test_digits_written_so_fast_that_they_touch_are_read_apart(window):
    """A 2 whose arc runs into the 3 written after it, and a 3 whose arc runs into the 6:
    the ink is one stroke, read as three digits."""
    window.write("2", left=100, top=60, height=180)
    window.write("3", left=190, top=60, height=180)
    window.write("6", left=290, top=60, height=180)
    ink = np.asarray(window.app.image.convert("L")) < 128
    assert ndimage.label(ink, structure=np.ones((3, 3)))[1] == 1  # one stroke
    assert window.read() == "236"
    assert len(window.boxes()) == 3


def test_recognition_runs_by_itself_when_the_pen_lifts(window):
    window.app.auto.set(True)
    window.draw("7")
    window.wait(lambda: window.number() not in ("", "…"), seconds=5)
    assert window.number() == "7"


def test_a_blank_canvas_asks_for_a_digit(window):
    assert window.read() == "draw a digit" and window.boxes() == []


def test_undo_removes_the_last_stroke(window):
    window.draw("17")
    window.key("ctrl+z")
    assert window.read() == "1"


def test_clear_empties_the_canvas(window):
    window.draw("17")
    assert window.read() == "17"
    window.key("Escape")
    assert window.number() == "" and window.app.canvas.find_all() == ()
    assert window.read() == "draw a digit"


def test_a_digit_read_with_low_confidence_is_marked_unsure(window):
    # What the model answers when it hesitates: shown in orange, with a question mark.
    sure = {"x": 100, "y": 60, "width": 20, "height": 180, "digit": 1, "confidence": 0.99}
    unsure = {"x": 300, "y": 60, "width": 110, "height": 180, "digit": 7, "confidence": 0.55}
    window.app.show({"digits": "17", "boxes": [sure, unsure]})
    assert window.number() == "17  (1 unsure)"
    labels = [
        window.app.canvas.itemcget(i, "text") for i in window.app.canvas.find_withtag("label")
    ]
    assert labels == ["1 99%", "7? 55%"]


def test_a_digit_is_corrected_by_clicking_it_and_typing_and_saved_as_the_model_saw_it(
    window, tmp_path
):
    window.draw("17")
    assert window.read() == "17"
    strokes = len(window.app.strokes)
    window.click_label(1)  # the 7
    window.key("4")
    assert window.number() == "14" and len(window.app.strokes) == strokes  # no ink added
    assert window.app.status["text"] == f"saved digit 2 as 4 in {tmp_path / 'feedback'}/"
    [(name, saved)] = feedback.load_all(tmp_path / "feedback").items()
    assert (saved.label, saved.read_as, saved.model_version) == (4, 7, "1")
    assert name == f"{saved.drawing}-2"
    drawing = Image.open(tmp_path / "feedback" / f"{saved.drawing}.png")
    assert drawing.size == (800, 300)  # the whole drawing it came from
    digit = np.asarray(Image.open(io.BytesIO(base64.b64decode(saved.pixels))))
    assert digit.shape == (28, 28)
    assert (
        window.app.reader.model.unwrap_python_model()
        .classify(digit[np.newaxis, ..., np.newaxis])
        .argmax()
        == 7
    )  # the pixels the model read as the 7


def test_a_reading_is_corrected_with_the_keyboard_and_the_rest_marked_read_right(window, tmp_path):
    window.draw("170")
    assert window.read() == "170"
    window.key("Right")
    window.key("Right")  # the second digit, the 7
    window.key("2")
    window.key("ctrl+Return")  # the others are read right
    corrections = feedback.load_all(tmp_path / "feedback").values()
    assert sorted((c.label, c.read_as) for c in corrections) == [(0, 0), (1, 1), (2, 7)]
    assert len({c.drawing for c in corrections}) == 1


def test_save_and_open_a_picture(window, tmp_path):
    window.draw("70")
    window.app.save_image(str(tmp_path / "drawing.png"))
    window.key("Delete")
    window.app.open_image(str(tmp_path / "drawing.png"))
    window.wait(lambda: not window.app.reading)
    assert window.number() == "70"


def test_a_missing_model_keeps_the_window_open_and_says_what_to_do(display, work, tmp_path):
    os.environ["MLFLOW_TRACKING_URI"] = store(work)
    window = Window(LocalModel(f"models:/{MODEL_NAME}@nobody"), tmp_path)
    try:
        # The window is up while the model loads; a missing one is found in milliseconds,
        # so "loading model …" may already be gone: wait for what it says then.
        window.wait(lambda: "does not exist" in window.app.status["text"])
        assert "run `make run` to train and register a model" in window.app.status["text"]
        window.draw("1")
        assert window.read() == ""  # no guess without a model
    finally:
        window.close()
        del os.environ["MLFLOW_TRACKING_URI"]


def test_open_reads_a_picture_as_the_model_reads_the_file(window, tmp_path):
    """Transparent pictures and photos turned by their EXIF tag read the same in the app
    as through the registered model (and so through `python -m serving.client`)."""
    window.draw("70")
    window.app.save_image(str(tmp_path / "drawing.png"))
    ink = 255 - np.asarray(Image.open(tmp_path / "drawing.png"))
    transparent = Image.new("RGBA", (ink.shape[1], ink.shape[0]), (0, 0, 0, 0))
    transparent.putalpha(Image.fromarray(ink))  # black everywhere: only the alpha is ink
    transparent.save(tmp_path / "transparent.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turn 90 degrees clockwise to show it upright
    turned = Image.open(tmp_path / "drawing.png").transpose(Image.Transpose.ROTATE_90)
    turned.save(tmp_path / "photo.jpg", quality=90, exif=exif)

    for name in ("transparent.png", "photo.jpg"):
        window.key("Delete")
        window.app.open_image(str(tmp_path / name))
        window.wait(lambda: not window.app.reading)
        as_the_model_reads_it = read_model(
            window.app.reader.model, [(tmp_path / name).read_bytes()]
        )
        assert window.number() == as_the_model_reads_it[0]["digits"] == "70", name


def test_open_reads_a_photo_of_a_number_on_ruled_paper(window, tmp_path):
    """A phone photo as people take one (blue ink on ruled cream paper turned by 4
    degrees, the table in a corner, light falling off to one side), opened as a user
    opens it: the app shows the ink without the lines or the table, and reads what the
    registered model reads in the file."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(photo("3504", tilt=4, ruled=True, table=True))
    window.app.open_image(str(path))
    window.wait(lambda: not window.app.reading)
    as_the_model_reads_it = read_model(window.app.reader.model, [path.read_bytes()])
    assert window.number().split()[0] == as_the_model_reads_it[0]["digits"] == "3504"
    shown = np.asarray(window.app.image.convert("L"))
    assert shown.min() < 100  # the ink is there ...
    assert np.mean(shown > 200) > 0.9  # ... on white: no table, no lines


@pytest.fixture(scope="module")
def endpoint(work):
    """`python -m serving` with the tests' champion, version 1."""
    with serve(work, "--model-uri", f"models:/{MODEL_NAME}/1") as server:
        yield server


@pytest.fixture
def endpoint_window(display, endpoint, tmp_path):
    window = Window(Endpoint(endpoint.url), tmp_path / "feedback")
    window.app.auto.set(False)
    window.wait(lambda: window.app.ready)
    yield window
    window.close()


def test_endpoint_mode(endpoint_window, endpoint):
    window = endpoint_window
    assert window.app.status["text"] == f"endpoint {endpoint.url}"
    window.draw("170")
    assert window.read() == "170" and len(window.boxes()) == 3
    window.key("Left")  # the last digit, the 0
    window.key("6")  # corrections are kept here, whatever reads the drawings
    [saved] = feedback.load_all(window.app.feedback_dir).values()
    # `python -m serving` does not say which version answered (the production endpoint does).
    assert (saved.label, saved.read_as, saved.model_version) == (6, 0, "unknown")


def ink_on_screen(window, left: int, right: int) -> bool:
    """Whether the window shows ink between these canvas columns (a real screenshot)."""
    canvas = window.app.canvas
    x, y = canvas.winfo_rootx(), canvas.winfo_rooty()
    shot = ImageGrab.grab((x + left, y, x + right, y + 300), xdisplay=os.environ["DISPLAY"])
    return bool((np.asarray(shot.convert("L")) < 128).any())


def test_a_stalled_endpoint_never_freezes_the_window(endpoint_window, endpoint):
    window = endpoint_window
    window.draw("7")
    os.killpg(endpoint.group, signal.SIGSTOP)  # the endpoint stops answering
    try:
        started = time.monotonic()
        window.key("Return")
        assert window.app.reading and window.number() == "…"
        window.key("Escape")  # Clear works while the endpoint stalls
        assert window.app.canvas.find_all() == () and window.number() == ""
        assert not ink_on_screen(window, 250, 450)  # the 7 is gone from the screen
        window.draw("1")
        assert ink_on_screen(window, 90, 130)  # and the new stroke is on it
        # The read waits up to 10 s; none of the above waited for it.
        assert time.monotonic() - started < 5 and window.app.reading
    finally:
        os.killpg(endpoint.group, signal.SIGCONT)
    assert window.read() == "1"  # the answer for the cleared 7 was dropped


def test_an_endpoint_that_does_not_answer(display, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    window = Window(Endpoint(url), tmp_path)
    try:
        window.wait(lambda: "no endpoint" in window.app.status["text"])
        assert window.app.status["text"] == (
            f"no endpoint answers at {url} within 5 s: start one with `python -m serving`"
        )
    finally:
        window.close()


@pytest.mark.parametrize("command", ["serving", "gui"])
def test_help_works_outside_the_repository(command, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", command, "--help"],
        cwd=tmp_path,
        env=stage_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:") and "--model-uri" in result.stdout
