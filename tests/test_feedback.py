"""The corrections store (pipeline/feedback.py) and its command, on real files and processes.

The app's side (correcting through real pointer and key events) is in test_gui.py.
"""

import base64
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import feedback
from digit_reader.contract import encode, png

from helpers import REPO, stage_env


def correction(drawing: str, label: int, read_as: int, version: str = "3") -> feedback.Correction:
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255  # a stroke, light on black as the network reads digits
    return feedback.Correction(
        label=label,
        read_as=read_as,
        model_version=version,
        drawing=drawing,
        box={"x": 10, "y": 20, "width": 30, "height": 60},
        pixels=encode(png(digit)),
        time="2026-11-27T22:00:00+00:00",
    )


def drawing_png() -> bytes:
    return png(np.full((300, 800), 255, np.uint8))


@pytest.fixture
def folder(tmp_path) -> Path:
    """Two drawings: "17" read as "11" by version 3, and a 3 read as 8 by version 4."""
    folder = tmp_path / "feedback"
    first = feedback.new_drawing(drawing_png(), folder)
    feedback.save(correction(first, 1, 1), 1, folder)
    feedback.save(correction(first, 7, 1), 2, folder)
    second = feedback.new_drawing(drawing_png(), folder)
    feedback.save(correction(second, 3, 8, version="4"), 1, folder)
    return folder


def command(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.feedback", "--folder", str(folder), *args],
        env=stage_env(),
        capture_output=True,
        text=True,
    )


def test_the_summary_counts_per_digit_and_per_model_version(folder):
    result = command(folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "3 digits from 2 drawings (2 misread, 1 read right)",
        "per digit:  0: 0  1: 1  2: 0  3: 1  4: 0  5: 0  6: 0  7: 1  8: 0  9: 0",
        "per model version that read them:  3: 2  4: 1",
    ]


def test_an_empty_folder_says_how_to_make_corrections(tmp_path):
    result = command(tmp_path / "nothing-yet")
    assert result.returncode == 0
    assert result.stdout.startswith("no corrections yet: correct a digit in the drawing app")


def test_one_correction_is_exported_and_removed_by_name(folder, tmp_path):
    names = [line.split()[0] for line in command(folder, "list").stdout.splitlines()]
    assert len(names) == 3
    seven = next(name for name in names if name.endswith("-2"))

    exported = command(folder, "export", seven, str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr
    digit, drawing = (Path(line) for line in exported.stdout.splitlines())
    assert Image.open(digit).size == (28, 28) and Image.open(drawing).size == (800, 300)

    assert command(folder, "remove", seven).returncode == 0
    assert seven not in feedback.load_all(folder)
    assert len(list(folder.glob("*.png"))) == 2  # the 1 still needs its drawing
    one = seven.removesuffix("-2") + "-1"
    assert command(folder, "remove", one).returncode == 0
    assert len(list(folder.glob("*.png"))) == 1  # now the drawing went with its last digit


def test_a_name_that_is_not_there_is_one_line(folder):
    result = command(folder, "remove", "20261127-000000-nothing-1")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: no correction named 20261127-000000-nothing-1 in {folder}/: "
        "`python -m pipeline.feedback list` names them all"
    )


def test_a_save_cut_short_is_never_read(folder):
    """A crash mid-save leaves a temporary file (core.paths.written_whole): skipped."""
    (folder / ".20261127-000000-cut-1.partial-99.json").write_text('{"label": 4, "read_')
    assert len(feedback.load_all(folder)) == 3


def test_two_windows_saving_at_once_lose_nothing(tmp_path):
    folder = tmp_path / "feedback"
    saver = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO / "tests")!r})
        from core import feedback
        from test_feedback import correction, drawing_png
        folder = feedback.Path({str(folder)!r})
        for i in range(40):
            drawing = feedback.new_drawing(drawing_png(), folder)
            for number in (1, 2):
                feedback.save(correction(drawing, i % 10, 0), number, folder)
        """
    )
    windows = [
        subprocess.Popen([sys.executable, "-c", saver], env=stage_env(), stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for window in windows:
        assert window.wait(timeout=120) == 0, window.stderr.read()
    corrections = feedback.load_all(folder)
    assert len(corrections) == 160 and len({c.drawing for c in corrections.values()}) == 80
    for saved in corrections.values():
        digit = Image.open(io.BytesIO(base64.b64decode(saved.pixels)))
        assert digit.size == (28, 28)


def test_a_file_that_is_not_a_correction_is_named(folder):
    (folder / "notes.json").write_text("my notes")
    result = command(folder)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {folder / 'notes.json'} is not a correction saved by the app: "
        "move it out of the folder"
    )
