"""The drawing app in a real Tk window on Xvfb, driven by real pointer and key events."""

import os
import shutil
import subprocess
import time
import tkinter as tk

import pytest

from gui.app import App
from gui.readers import Endpoint, LocalModel
from pipeline.numbers import PEN_DIGITS

from conftest import free_port, serve

# Digits as pen strokes in a unit box (x right, y down), as the numbers benchmark draws them.
STROKES = {digit: ways[0] for digit, ways in PEN_DIGITS.items()}
LEFT = {"1": 100, "7": 300, "0": 500}  # where each digit is drawn, in canvas pixels


@pytest.fixture(scope="session")
def display():
    """An Xvfb screen of our own, unless the tests already run on one."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if not shutil.which("Xvfb") or not shutil.which("xdotool"):
        pytest.fail("the GUI tests need Xvfb and xdotool (Debian: apt-get install xvfb xdotool)")
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=[write],
    )
    os.close(write)
    number = os.read(read, 16).decode().strip()
    os.environ["DISPLAY"] = f":{number}"
    yield os.environ["DISPLAY"]
    xvfb.terminate()
    xvfb.wait()
    del os.environ["DISPLAY"]


class Window:
    """The app in a real window, and a hand that moves the pointer with xdotool."""

    def __init__(self, reader):
        self.root = tk.Tk()
        self.app = App(self.root, reader)
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

    def boxes(self) -> list[list[float]]:
        return [self.app.canvas.coords(i) for i in self.app.canvas.find_withtag("box")]

    def number(self) -> str:
        return self.app.number["text"]

    def close(self) -> None:
        self.root.destroy()


@pytest.fixture
def window(display, work):
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    window = Window(LocalModel("models:/mnist-cnn/1"))
    window.app.auto.set(False)  # each test presses Recognise itself, unless it tests this
    window.wait(lambda: window.app.ready)
    yield window
    window.close()
    del os.environ["MLFLOW_TRACKING_URI"]


def test_status_names_the_model(window):
    assert window.app.status["text"] == "model mnist-cnn version 1, in process"


def test_a_number_drawn_by_hand_is_read_with_a_box_per_digit(window):
    window.draw("170")
    window.key("Return")
    assert window.number() == "170"
    boxes = window.boxes()
    assert len(boxes) == 3
    for (x0, y0, x1, y1), digit in zip(boxes, "170", strict=True):
        assert x0 < LEFT[digit] + 10 < x1  # the box is around the digit drawn there
        assert y0 < 60 and 240 < y1


def test_a_small_digit_written_before_a_large_one_is_read_as_two(window):
    window.write("2", left=100, top=150, height=90)  # both end on one writing line
    window.write("6", left=175, top=40, height=200)
    window.key("Return")
    assert window.number() == "26"
    (x0, y0, x1, _), (x2, y2, x3, _) = window.boxes()
    assert x0 < 100 < x1 < 175 and 160 < x2 < 175 < x3  # a box around each digit drawn
    assert y0 > y2 + 80  # the 2 half as tall as the 6


def test_recognition_runs_by_itself_when_the_pen_lifts(window):
    window.app.auto.set(True)
    window.draw("7")
    window.wait(lambda: window.number() != "", seconds=5)
    assert window.number() == "7"


def test_a_blank_canvas_asks_for_a_digit(window):
    window.key("Return")
    assert window.number() == "draw a digit" and window.boxes() == []


def test_undo_removes_the_last_stroke(window):
    window.draw("17")
    window.key("ctrl+z")
    window.key("Return")
    assert window.number() == "1"


def test_clear_empties_the_canvas(window):
    window.draw("17")
    window.key("Return")
    window.key("Escape")
    assert window.number() == "" and window.app.canvas.find_all() == ()
    window.key("Return")
    assert window.number() == "draw a digit"


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


def test_save_and_open_a_picture(window, tmp_path):
    window.draw("70")
    window.app.save_image(str(tmp_path / "drawing.png"))
    window.key("Delete")
    window.app.open_image(str(tmp_path / "drawing.png"))
    assert window.number() == "70"


def test_a_missing_model_keeps_the_window_open_and_says_what_to_do(display, work):
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    window = Window(LocalModel("models:/mnist-cnn@nobody"))
    try:
        assert window.app.status["text"] == "loading model …"  # the window is up at once
        window.wait(lambda: "does not exist" in window.app.status["text"])
        assert "run `make run` to train and register a model" in window.app.status["text"]
        window.draw("1")
        window.key("Return")
        assert window.number() == ""  # no guess without a model
    finally:
        window.close()
        del os.environ["MLFLOW_TRACKING_URI"]


def test_endpoint_mode(display, work):
    with serve(work, "--model-uri", "models:/mnist-cnn/1") as url:
        window = Window(Endpoint(url))
        try:
            window.app.auto.set(False)
            window.wait(lambda: window.app.ready)
            assert window.app.status["text"] == f"endpoint {url}"
            window.draw("170")
            window.key("Return")
            assert window.number() == "170" and len(window.boxes()) == 3
        finally:
            window.close()


def test_an_endpoint_that_does_not_answer(display):
    url = f"http://127.0.0.1:{free_port()}"
    window = Window(Endpoint(url))
    try:
        window.wait(lambda: "no endpoint" in window.app.status["text"])
        assert window.app.status["text"] == (
            f"no endpoint answers at {url}: start one with `python -m serving`"
        )
    finally:
        window.close()
