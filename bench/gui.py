"""Time from pressing Recognise to the result on screen, in the drawing app.

    python bench/gui.py [--model-uri models:/mnist-cnn@champion] [--repeat 50]

Draws 1, 3 and 10 digits on the canvas (through the app's own pen handlers), then times
`recognise()` plus the redraw of the window, with the registered model in process.
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

# A zigzag per digit: the model reads something; only the number of digits matters here.
ZIGZAG = [(0.0, 0.0), (1.0, 0.0), (0.0, 0.5), (1.0, 0.5), (0.0, 1.0), (1.0, 1.0)]


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


def draw(app, count: int) -> None:
    app.clear()
    width = 780 // count
    for index in range(count):
        left = 10 + index * width
        points = [(left + x * width * 0.6, 70 + y * 160) for x, y in ZIGZAG]
        app.pen_down(SimpleNamespace(x=points[0][0], y=points[0][1]))
        for x, y in points[1:]:
            app.pen_move(SimpleNamespace(x=x, y=y))
        app.pen_up(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", default="models:/mnist-cnn@champion")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    xvfb = ensure_display()

    import tkinter as tk

    from gui.app import App
    from gui.readers import LocalModel

    root = tk.Tk()
    app = App(root, LocalModel(args.model_uri))
    app.auto.set(False)
    while not app.ready:
        root.update()
        time.sleep(0.02)
        assert "does not exist" not in app.status["text"], app.status["text"]

    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs; {app.status['text']}")
    print(f"{args.repeat} presses each, after 3 warm-up presses\n")
    print("| digits on the canvas | found | press to result median (ms) | p95 (ms) |")
    print("| --- | --- | --- | --- |")
    for count in (1, 3, 10):
        draw(app, count)
        root.update()
        times = []
        for attempt in range(args.repeat + 3):
            started = time.perf_counter()
            app.recognise()
            root.update_idletasks()  # the boxes and the number drawn on screen
            if attempt >= 3:
                times.append(time.perf_counter() - started)
        found = len(app.canvas.find_withtag("box"))
        median, p95 = np.median(times) * 1000, np.percentile(times, 95) * 1000
        print(f"| {count} | {found} | {median:.1f} | {p95:.1f} |")
    root.destroy()
    if xvfb:
        xvfb.terminate()


if __name__ == "__main__":
    main()
