"""A correction from one box of the model's answer, as the drawing app and the review
window both save it (the store: core/feedback.py)."""

from datetime import UTC, datetime

from core.feedback import Correction


def correction_of(box: dict, label: int, version: str | None, drawing: str) -> Correction:
    """The correction of one box of a model's answer: its digit is `label`."""
    return Correction(
        label=label,
        read_as=box["digit"],
        model_version=version or "unknown",
        drawing=drawing,
        box={key: box[key] for key in ("x", "y", "width", "height")},
        pixels=box["pixels"],
        time=datetime.now(UTC).isoformat(timespec="seconds"),
    )
