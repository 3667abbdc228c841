"""The pieces stage: what the reader cuts out of written numbers, labelled right."""

import numpy as np
import pytest

from digit_reader.normalize import NOT_A_DIGIT, candidates
from pipeline.pieces import make_pieces, pieces_of
from pipeline.preprocess import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from synthetic.numbers import compose_touching, mnist_digit, picture_of

from helpers import run_stage, write_params


@pytest.fixture(scope="module")
def training_digits(mirror):
    images = read_idx(mirror / "train-images-idx3-ubyte.gz", IMAGES_MAGIC, (60_000, 28, 28))
    labels = read_idx(mirror / "train-labels-idx1-ubyte.gz", LABELS_MAGIC, (60_000,))
    return images[:3000, ..., np.newaxis], labels[:3000]


def test_whole_digits_keep_their_digit_and_pieces_are_not_a_digit(training_digits):
    """Three digits written in one stroke: the candidates that are one of them are labelled
    with its digit, the candidate of all the ink (three digits) is not one digit."""
    images, labels = training_digits
    chosen = [0, 1, 2]  # a 5, a 0 and a 4
    inks = [mnist_digit(images[i, ..., 0], 80) for i in chosen]
    ink, boxes = compose_touching(inks, 80, (0.05, 0.05), 0.0, np.random.default_rng(1))
    picture = picture_of(ink)
    pixels, answers = pieces_of(picture, labels[chosen], boxes)
    assert set(answers) - {NOT_A_DIGIT} == {5, 0, 4}
    everything = max(candidates(picture).digits, key=lambda d: d.width)
    assert [answers[i] for i, p in enumerate(pixels) if np.array_equal(p, everything.pixels)] == [
        NOT_A_DIGIT
    ]


def test_the_same_seed_gives_the_same_pieces(training_digits):
    first, again = make_pieces(*training_digits, 10, 5), make_pieces(*training_digits, 10, 5)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[0].dtype == np.uint8 and first[0].shape[1:] == (28, 28, 1)
    assert 0 < np.mean(first[1] == NOT_A_DIGIT) < 1  # both kinds


def test_the_stage_writes_the_pieces_of_the_training_split(tmp_path, mirror):
    write_params(
        tmp_path, preprocess={"val_size": 500, "train_subset": 2000}, pieces={"numbers": 5}
    )
    for stage in ("fetch", "preprocess", "pieces"):
        result = run_stage(f"pipeline.{stage}", tmp_path, MNIST_MIRROR=str(mirror))
        assert result.returncode == 0, result.stderr
    pieces = np.load(tmp_path / "data" / "pieces.npz")
    assert len(pieces["y"]) > 5 and set(pieces["y"]) <= set(range(11))
    assert "not one whole digit" in result.stdout
