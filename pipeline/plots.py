"""PNG plots of a training run: curves, confusion matrix, misclassified digits."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from core.paths import written_whole  # noqa: E402


def training_curves(history: dict[str, list[float]], path: Path) -> None:
    epochs = range(1, len(history["loss"]) + 1)
    fig, (loss, accuracy) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in ((loss, "loss"), (accuracy, "accuracy")):
        axis.plot(epochs, history[metric], "o-", label="training")
        axis.plot(epochs, history[f"val_{metric}"], "o-", label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    with written_whole(path) as partial:
        fig.savefig(partial, dpi=100)
    plt.close(fig)


def confusion_matrix(matrix: np.ndarray, path: Path) -> None:
    fig, axis = plt.subplots(figsize=(6, 5.5))
    axis.imshow(np.log1p(matrix), cmap="Blues")
    for (true, predicted), count in np.ndenumerate(matrix):
        color = "white" if true == predicted else "black"
        axis.text(predicted, true, str(count), ha="center", va="center", fontsize=8, color=color)
    axis.set_xticks(range(10))
    axis.set_yticks(range(10))
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title("Test set confusion matrix")
    fig.tight_layout()
    with written_whole(path) as partial:
        fig.savefig(partial, dpi=100)
    plt.close(fig)


def misclassified(
    images: np.ndarray, true: np.ndarray, predicted: np.ndarray, path: Path, limit: int = 40
) -> None:
    """A grid of the first `limit` wrong answers, titled 'true -> predicted'."""
    count = min(limit, len(images))
    columns = 10
    rows = max(1, -(-count // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < count:
            axis.imshow(images[index].squeeze(), cmap="gray_r")
            axis.set_title(f"{true[index]} -> {predicted[index]}", fontsize=9, color="crimson")
    fig.suptitle(f"Misclassified test digits (true -> predicted), first {count}")
    fig.tight_layout()
    with written_whole(path) as partial:
        fig.savefig(partial, dpi=100)
    plt.close(fig)
