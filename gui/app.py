"""The drawing window: a canvas to write digits on, and what the model reads in them.

Each stroke is drawn on the Tk canvas and, at the same time, into an off-screen Pillow
image; that image is what the model reads (the app never grabs the screen). Loading the
model and reading happen in threads, so the window never waits for them; Tk is only
touched from its own loop, which picks up their answers from a queue.

A reading can be corrected: click a digit's label (or select it with the arrow keys) and
type the right digit, or mark the whole reading right. Each correction is saved at once
to the feedback folder (pipeline/feedback.py), on this machine, whichever model reads.
"""

import io
import queue
import threading
import tkinter as tk
from dataclasses import dataclass, field
from pathlib import Path
from tkinter import filedialog

from PIL import Image, ImageDraw

from core import feedback
from core.errors import UserError
from core.paths import FEEDBACK_DIR
from digit_reader.contract import UNSURE_BELOW
from digit_reader.normalize import on_paper
from gui.corrections import correction_of
from synthetic.pen import pen_line

WIDTH, HEIGHT = 800, 300
AUTO_DELAY_MS = 600  # recognise this long after the pen lifts
POLL_MS = 10  # how often the Tk loop looks for answers from the threads


@dataclass
class Stroke:
    width: int
    points: list[tuple[int, int]] = field(default_factory=list)
    items: list[int] = field(default_factory=list)  # canvas items drawn for it


@dataclass
class Reading:
    """The reading on screen, which corrections refer to."""

    picture: bytes  # the drawing as the model read it (PNG)
    result: dict  # the model's answer, with the version that gave it
    labels: list[int]  # per digit: as read, or as corrected
    drawing: str | None = None  # its id in the feedback folder, once saved there


class App:
    def __init__(self, root: tk.Tk, reader, feedback_dir: Path = FEEDBACK_DIR):
        self.root, self.reader, self.feedback_dir = root, reader, feedback_dir
        self.ready = False
        self.source = ""  # what reads the drawings, for the status line
        self.changes = 0  # edits of the drawing so far: a reading of an older one is dropped
        self.request: tuple[int, bytes] | None = None  # the drawing waiting to be read
        self.reading = False  # a read is under way in a thread
        self.strokes: list[Stroke] = []
        self.background = Image.new("L", (WIDTH, HEIGHT), 255)  # white, or an opened picture
        self.image = self.background.copy()  # background plus strokes: what the model reads
        self.photo = None  # keeps the opened picture's Tk image alive
        self.auto_job = None
        self.shown: Reading | None = None
        self.selected: int | None = None  # the digit of the reading that a key corrects
        self.messages: queue.Queue = queue.Queue()
        self._build()
        self.set_status("loading model …")
        threading.Thread(target=self._load, daemon=True).start()
        self.root.after(POLL_MS, self._poll)

    def _build(self) -> None:
        root = self.root
        root.title("Handwritten digits")
        self.canvas = tk.Canvas(
            root, width=WIDTH, height=HEIGHT, bg="white", highlightthickness=0, cursor="pencil"
        )
        self.canvas.pack(padx=8, pady=8)
        self.number = tk.Label(root, text="", font=("Helvetica", 40, "bold"))
        self.number.pack()
        bar = tk.Frame(root)
        bar.pack(fill="x", padx=8)
        for text, command in [
            ("Recognise", self.recognise),
            ("Read right", self.mark_read_right),
            ("Undo", self.undo),
            ("Clear", self.clear),
            ("Open…", self.open_image),
            ("Save…", self.save_image),
        ]:
            tk.Button(bar, text=text, command=command).pack(side="left", padx=2)
        self.auto = tk.BooleanVar(value=True)
        tk.Checkbutton(bar, text="recognise when the pen lifts", variable=self.auto).pack(
            side="left", padx=8
        )
        self.pen = tk.IntVar(value=14)
        tk.Scale(
            bar,
            from_=4,
            to=40,
            orient="horizontal",
            label="pen width",
            variable=self.pen,
            length=140,
        ).pack(side="right")
        self.status = tk.Label(root, anchor="w", fg="gray25")
        self.status.pack(fill="x", padx=8, pady=(0, 6))

        self.canvas.bind("<ButtonPress-1>", self.pen_down)
        self.canvas.bind("<B1-Motion>", self.pen_move)
        self.canvas.bind("<ButtonRelease-1>", self.pen_up)
        root.bind("<Return>", lambda _: self.recognise())
        root.bind("<Escape>", lambda _: self.clear())
        root.bind("<Delete>", lambda _: self.clear())
        root.bind("<Control-z>", lambda _: self.undo())
        root.bind("<Control-Return>", lambda _: self.mark_read_right())
        root.bind("<Left>", lambda _: self.select_next(-1))
        root.bind("<Right>", lambda _: self.select_next(1))
        for digit in range(10):
            root.bind(str(digit), lambda _, digit=digit: self.correct(digit))
            root.bind(f"<KP_{digit}>", lambda _, digit=digit: self.correct(digit))

    # The model loads in a thread; Tk is only touched from the main loop.
    def _load(self) -> None:
        try:
            self.messages.put(("ready", self.reader.load()))
        except UserError as error:
            self.messages.put(("error", str(error)))
        except Exception as error:  # noqa: BLE001 - the window must stay up and say why
            self.messages.put(("error", f"cannot load the model: {error}"))

    def _poll(self) -> None:
        while not self.messages.empty():
            kind, *answer = self.messages.get()
            if kind in ("ready", "error"):
                self.ready, self.source = kind == "ready", answer[0]
                self.set_status(self.source, error=not self.ready)
            else:
                self._read_done(kind, *answer)
        self.root.after(POLL_MS, self._poll)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.config(text=text, fg="firebrick" if error else "gray25")

    # Drawing
    def pen_down(self, event) -> None:
        self.stroke = None
        clicked = self._digit_at(event.x, event.y)
        if clicked is not None:  # a digit's label: select it for correcting, draw nothing
            self.select(clicked)
            return
        self._cancel_auto()
        self.changes += 1
        self.stroke = Stroke(self.pen.get(), [(event.x, event.y)])
        self._draw_segment(event.x, event.y, event.x, event.y)

    def pen_move(self, event) -> None:
        if self.stroke is None:
            return
        (x0, y0) = self.stroke.points[-1]
        self.stroke.points.append((event.x, event.y))
        self._draw_segment(x0, y0, event.x, event.y)

    def pen_up(self, _event) -> None:
        if self.stroke is None:
            return
        self.strokes.append(self.stroke)
        if self.auto.get():
            self.auto_job = self.root.after(AUTO_DELAY_MS, self.recognise)

    def _draw_segment(self, x0: int, y0: int, x1: int, y1: int) -> None:
        width = self.stroke.width
        item = self.canvas.create_line(
            x0, y0, x1, y1, width=width, capstyle="round", fill="black", tags="ink"
        )
        self.stroke.items.append(item)
        pen_line(ImageDraw.Draw(self.image), [(x0, y0), (x1, y1)], width, ink=0)

    def undo(self) -> None:
        if not self.strokes:
            return
        self.changes += 1
        for item in self.strokes.pop().items:
            self.canvas.delete(item)
        self.image = self.background.copy()
        draw = ImageDraw.Draw(self.image)
        for stroke in self.strokes:
            for start, end in zip(stroke.points, stroke.points[1:] or stroke.points, strict=False):
                pen_line(draw, [start, end], stroke.width, ink=0)
        self._clear_result()

    def clear(self) -> None:
        self._cancel_auto()
        self.changes += 1
        self.strokes.clear()
        self.canvas.delete("all")
        self.background = Image.new("L", (WIDTH, HEIGHT), 255)
        self.image = self.background.copy()
        self.photo = None
        self._clear_result()

    # Reading
    def recognise(self) -> None:
        self._cancel_auto()
        self._clear_result()
        if not self.ready:
            return  # the status line says why (loading, or what to fix)
        if not self.strokes and self.photo is None:
            self.number.config(text="draw a digit", fg="gray40")
            return
        buffer = io.BytesIO()
        self.image.save(buffer, "PNG")
        self.request = (self.changes, buffer.getvalue())
        self.number.config(text="…", fg="gray40")
        if not self.reading:
            self._read_next()

    def _read_next(self) -> None:
        changes, png = self.request
        self.request, self.reading = None, True
        threading.Thread(target=self._read, args=(changes, png), daemon=True).start()

    def _read(self, changes: int, png: bytes) -> None:
        """In a thread: read one drawing, and queue the answer for the Tk loop."""
        try:
            self.messages.put(("read", changes, (png, self.reader.read(png))))
        except Exception as error:  # noqa: BLE001 - an endpoint may fail; say so, keep going
            self.messages.put(("failed", changes, str(error)))

    def _read_done(self, kind: str, changes: int, answer) -> None:
        self.reading = False
        if self.request:  # the drawing was sent again while this one was read
            self._read_next()
            return
        self._clear_result()
        if changes != self.changes:
            return  # the drawing changed since it was sent: the answer is stale
        if kind == "read":
            self.set_status(self.source)
            picture, result = answer
            self.show(result, picture)
        else:
            self.set_status(answer, error=True)

    def show(self, result: dict, picture: bytes = b"") -> None:
        self.shown = Reading(picture, result, [box["digit"] for box in result["boxes"]])
        if not result["digits"]:
            self.number.config(text="draw a digit", fg="gray40")
            return
        unsure = 0
        for number, box in enumerate(result["boxes"]):
            sure = box["confidence"] >= UNSURE_BELOW
            unsure += not sure
            color = "forest green" if sure else "dark orange"
            x, y, w, h = box["x"], box["y"], box["width"], box["height"]
            self.canvas.create_rectangle(
                x - 4,
                y - 4,
                x + w + 4,
                y + h + 4,
                outline=color,
                width=2,
                tags=("result", "box", f"digit-{number}"),
            )
            label = f"{box['digit']}{'' if sure else '?'} {box['confidence']:.0%}"
            self.canvas.create_text(
                x - 4,
                y - 6,
                text=label,
                anchor="sw",
                fill=color,
                font=("Helvetica", 12, "bold"),
                tags=("result", "label", f"digit-{number}"),
            )
        self.number.config(text=result["digits"], fg="dark orange" if unsure else "black")
        if unsure:
            self.number.config(text=f"{result['digits']}  ({unsure} unsure)")

    def _clear_result(self) -> None:
        self.canvas.delete("result")
        self.number.config(text="", fg="black")
        self.shown, self.selected = None, None

    # Correcting
    def _digit_at(self, x: int, y: int) -> int | None:
        """The digit of the reading whose label is under the pointer, if any."""
        for item in self.canvas.find_overlapping(x - 2, y - 2, x + 2, y + 2):
            tags = self.canvas.gettags(item)
            if "label" in tags:
                return int(next(t for t in tags if t.startswith("digit-")).removeprefix("digit-"))
        return None

    def select(self, number: int) -> None:
        if not self.shown or not self.shown.labels:
            return
        self.selected = number % len(self.shown.labels)
        self.canvas.itemconfig("box", width=2)
        self.canvas.itemconfig(f"box&&digit-{self.selected}", width=5)
        self.set_status(f"digit {self.selected + 1} selected: type the right digit")

    def select_next(self, step: int) -> None:
        if self.selected is None:
            self.select(0 if step > 0 else -1)
        else:
            self.select(self.selected + step)

    def correct(self, digit: int) -> None:
        """The selected digit is `digit`: save that, and show it."""
        if self.shown is None or self.selected is None:
            return
        self.shown.labels[self.selected] = digit
        self.canvas.itemconfig(f"label&&digit-{self.selected}", text=f"{digit} ✓", fill="black")
        self.number.config(text="".join(map(str, self.shown.labels)), fg="black")
        self._save([self.selected])

    def mark_read_right(self) -> None:
        """Every digit of the reading on screen is as shown: save them all."""
        if self.shown and self.shown.labels:
            self._save(range(len(self.shown.labels)))

    def _save(self, numbers) -> None:
        reading = self.shown
        if "pixels" not in reading.result["boxes"][0]:
            self.set_status(
                "this model does not say which pixels it read, so corrections cannot be saved: "
                "use a version registered since corrections exist",
                error=True,
            )
            return
        try:
            if reading.drawing is None:
                reading.drawing = feedback.new_drawing(reading.picture, self.feedback_dir)
            for number in numbers:
                correction = correction_of(
                    reading.result["boxes"][number],
                    reading.labels[number],
                    reading.result.get("model_version"),
                    reading.drawing,
                )
                path = feedback.save(correction, number + 1, self.feedback_dir)
        except OSError as error:
            self.set_status(f"cannot save the correction: {error}", error=True)
            return
        saved = (
            f"digit {number + 1} as {reading.labels[number]}"
            if len(numbers) == 1
            else (f"all {len(numbers)} digits as read right")
        )
        self.set_status(f"saved {saved} in {path.parent}/")

    def _cancel_auto(self) -> None:
        if self.auto_job:
            self.root.after_cancel(self.auto_job)
            self.auto_job = None

    # Files
    def open_image(self, path: str | None = None) -> None:
        path = path or filedialog.askopenfilename(
            filetypes=[("Pictures", "*.png *.jpg *.jpeg"), ("All files", "*")]
        )
        if not path:
            return
        try:
            with Image.open(path) as opened:
                picture = on_paper(opened)  # as the model reads the file itself
        except (OSError, Image.DecompressionBombError) as error:
            self.set_status(f"cannot open {path}: {error}", error=True)
            return
        self.clear()
        picture.thumbnail((WIDTH, HEIGHT))  # fit the canvas, keeping the aspect ratio
        corner = ((WIDTH - picture.width) // 2, (HEIGHT - picture.height) // 2)
        self.background.paste(picture, corner)
        self.image = self.background.copy()
        buffer = io.BytesIO()
        self.background.save(buffer, "PNG")
        self.photo = tk.PhotoImage(data=buffer.getvalue())
        self.canvas.create_image(0, 0, image=self.photo, anchor="nw", tags="picture")
        self.recognise()

    def save_image(self, path: str | None = None) -> None:
        path = path or filedialog.asksaveasfilename(
            defaultextension=".png", filetypes=[("PNG", "*.png")]
        )
        if path:
            self.image.save(Path(path), "PNG")
            self.set_status(f"saved {path}")
