"""The review window: the pictures the production endpoint was unsure about, one by one,
for a person to label (`python -m gui --review DIR`; the folder: core/review.py).

Each picture is shown with the boxes and digits the model read. Type the digits as they
are written and press Return: each digit becomes a correction in the feedback folder,
exactly as one made in the drawing app, with the version that read it, and the picture
leaves the review folder. Escape skips a picture (it stays for a later review). Digits
typed in another count than the model found mark the count wrong, at a second Return:
the picture then moves to count-wrong/ with the digits as typed.
"""

import io
import tkinter as tk
from pathlib import Path

from PIL import Image, ImageTk

from core import feedback
from core.review import Kept, ReviewFolder, done
from gui.app import HEIGHT, WIDTH  # the same canvas as the drawing app's
from gui.corrections import correction_of


class Review:
    def __init__(self, root: tk.Tk, folder: ReviewFolder, feedback_dir: Path):
        self.root, self.folder, self.feedback_dir = root, folder, feedback_dir
        self.pending = folder.pending()
        self.index = 0  # the picture on screen
        self.typed = ""  # the digits typed for it
        self.count_wrong_asked = False  # Return pressed once with another count
        self.photo = None  # keeps the picture's Tk image alive
        self._build()
        self.show()
        self._tick()

    def _tick(self) -> None:
        """Hand control to Python now and then: Tk's wait would otherwise hold off
        Ctrl+C and SIGTERM until the next key."""
        self.root.after(200, self._tick)

    def _build(self) -> None:
        self.root.title("Review unsure answers")
        self.canvas = tk.Canvas(self.root, width=WIDTH, height=HEIGHT, bg="white")
        self.canvas.pack(padx=8, pady=8)
        self.about = tk.Label(self.root, anchor="w")
        self.about.pack(fill="x", padx=8)
        self.answer = tk.Label(self.root, text="", font=("Helvetica", 40, "bold"))
        self.answer.pack()
        self.status = tk.Label(self.root, anchor="w", fg="gray25")
        self.status.pack(fill="x", padx=8, pady=(0, 6))
        for digit in range(10):
            self.root.bind(str(digit), lambda _, digit=digit: self.type(str(digit)))
            self.root.bind(f"<KP_{digit}>", lambda _, digit=digit: self.type(str(digit)))
        self.root.bind("<BackSpace>", lambda _: self.type(None))
        self.root.bind("<Return>", lambda _: self.save())
        self.root.bind("<Escape>", lambda _: self.skip())

    def current(self) -> Kept | None:
        return self.pending[self.index] if self.index < len(self.pending) else None

    def show(self) -> None:
        self.canvas.delete("all")
        self.typed, self.count_wrong_asked = "", False
        kept = self.current()
        if kept is None:
            self.about.config(text="")
            self.answer.config(text="")
            self.set_status("nothing left to review")
            return
        with Image.open(kept.picture) as opened:
            picture = opened.convert("RGB")
        scale = min(WIDTH / picture.width, HEIGHT / picture.height)
        shown = picture.resize((round(picture.width * scale), round(picture.height * scale)))
        self.photo = ImageTk.PhotoImage(shown)
        self.canvas.create_image(0, 0, image=self.photo, anchor="nw")
        for box in kept.answer["boxes"]:
            x, y = box["x"] * scale, box["y"] * scale
            w, h = box["width"] * scale, box["height"] * scale
            self.canvas.create_rectangle(x, y, x + w, y + h, outline="dark orange", width=2)
            label = f"{box['digit']} {box['confidence']:.0%}"
            self.canvas.create_text(x, y - 2, text=label, anchor="sw", fill="dark orange")
        self.about.config(
            text=f"picture {self.index + 1} of {len(self.pending)}: version {kept.version} "
            f"read {kept.answer['digits'] or 'no digit'} ({kept.time})"
        )
        self.answer.config(text="_")
        self.set_status("type the digits as written, then Return; Escape skips")

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.config(text=text, fg="firebrick" if error else "gray25")

    def type(self, digit: str | None) -> None:
        if self.current() is None:
            return
        self.typed = self.typed + digit if digit else self.typed[:-1]
        self.count_wrong_asked = False
        self.answer.config(text=self.typed or "_")

    def save(self) -> None:
        kept = self.current()
        if kept is None or not self.typed:
            return
        boxes = kept.answer["boxes"]
        try:
            if len(self.typed) == len(boxes):
                self.save_corrections(kept)
            elif self.count_wrong_asked:
                where = self.folder.count_wrong(kept, self.typed)
                self.set_status(f"{self.typed}: the count was wrong, moved to {where.parent}/")
            else:
                self.count_wrong_asked = True
                self.set_status(
                    f"the model found {len(boxes)} digits and you typed {len(self.typed)}: "
                    "Return again marks the count wrong; BackSpace to change",
                    error=True,
                )
                return
        except OSError as error:
            self.set_status(f"cannot save: {error}", error=True)
            return
        del self.pending[self.index]
        status = self.status["text"]
        self.show()
        if self.current():
            self.set_status(status)

    def save_corrections(self, kept: Kept) -> None:
        """Each typed digit becomes a correction, then the picture leaves the folder."""
        with Image.open(kept.picture) as opened:
            buffer = io.BytesIO()
            opened.save(buffer, "PNG")  # drawings are kept as PNG, whatever was sent
        drawing = feedback.new_drawing(buffer.getvalue(), self.feedback_dir)
        for number, (box, label) in enumerate(zip(kept.answer["boxes"], self.typed, strict=True)):
            correction = correction_of(box, int(label), kept.version, drawing)
            feedback.save(correction, number + 1, self.feedback_dir)
        done(kept)
        self.set_status(
            f"saved {self.typed} as read by version {kept.version} in {self.feedback_dir}/"
        )

    def skip(self) -> None:
        if self.current() is not None:
            self.index += 1
            self.show()
