"""Time from pressing Recognise to the result on screen, in the drawing app.

    python bench/gui.py [--model-uri URI] [--repeat 50]

Draws 1, 3 and 10 digits as pen strokes on the canvas (through the app's own pen
handlers) and prints what the app read, then times `recognise()` until the answer is
drawn in the window (the read runs in a thread, the Tk loop shows it), with the
registered model in process.
Starts its own Xvfb when there is no DISPLAY. Needs a trained model (`make run`).
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthetic.numbers import PEN_DIGITS  # noqa: E402

NUMBER = "2739150486"  # what is drawn: its first 1, 3 or 10 digits, as pen strokes


def ensure_display() -> subprocess.Popen | None:
    if os.environ.get("DISPLAY"):
        return None
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=[write],
    )
    os.close(write)
    os.environ["DISPLAY"] = ":" + os.read(read, 16).decode().strip()
    return xvfb


def draw(app, count: int) -> str:
    """The first `count` digits of NUMBER across the canvas; returns what was drawn."""
    app.clear()
    step = 780 // count
    height = min(160, int(step * 1.2))
    for index, digit in enumerate(NUMBER[:count]):
        left = 10 + index * step
        width = 0.15 * height if digit == "1" else 0.6 * height
        for stroke in PEN_DIGITS[digit][0]:
            points = [(left + x * width, 70 + y * height) for x, y in stroke]
            app.pen_down(SimpleNamespace(x=points[0][0], y=points[0][1]))
            for x, y in points[1:]:
                app.pen_move(SimpleNamespace(x=x, y=y))
            app.pen_up(None)
    return NUMBER[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", help="a registry URI (default: the champion)")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    xvfb = ensure_display()

    import tkinter as tk

    from core.registry import alias_uri
    from gui.app import App
    from gui.readers import LocalModel

    root = tk.Tk()
    app = App(root, LocalModel(args.model_uri or alias_uri()))
    app.auto.set(False)
    while not app.ready:
        root.update()
        time.sleep(0.02)
        assert "does not exist" not in app.status["text"], app.status["text"]

    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs; {app.status['text']}")
    print(f"{args.repeat} presses each, after 3 warm-up presses\n")
    print("| digits on the canvas | drawn | read | press to result median (ms) | p95 (ms) |")
    print("| --- | --- | --- | --- | --- |")
    for count in (1, 3, 10):
        drawn = draw(app, count)
        root.update()
        times = []
        for attempt in range(args.repeat + 3):
            started = time.perf_counter()
            app.recognise()
            while app.reading:  # read in the app's thread; the Tk loop shows the answer
                root.update()
                time.sleep(0.001)
            root.update_idletasks()  # the boxes and the number drawn on screen
            if attempt >= 3:
                times.append(time.perf_counter() - started)
        median, p95 = np.median(times) * 1000, np.percentile(times, 95) * 1000
        print(f"| {count} | {drawn} | {app.number['text']} | {median:.1f} | {p95:.1f} |")
    root.destroy()
    if xvfb:
        xvfb.terminate()


if __name__ == "__main__":
    main()
