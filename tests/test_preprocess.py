"""The preprocess stage on the real MNIST files, and on corrupt ones."""

import gzip
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from core.paths import save_arrays
from pipeline.preprocess import split

from helpers import run_stage, write_params


@pytest.fixture
def raw(tmp_path, mirror) -> Path:
    """A work folder whose data/raw holds copies of the real files."""
    shutil.copytree(mirror, tmp_path / "data" / "raw", ignore=shutil.ignore_patterns("*.md"))
    for path in (tmp_path / "data" / "raw").iterdir():
        path.chmod(0o644)
    return tmp_path


def test_writes_uint8_splits_of_the_real_files(raw):
    write_params(raw, preprocess={"val_size": 5000, "seed": 42, "train_subset": None})
    result = run_stage("pipeline.preprocess", raw)
    assert result.returncode == 0, result.stderr
    train, val, test = (
        np.load(raw / "data" / "prepared" / f"{n}.npz") for n in ("train", "val", "test")
    )
    assert train["x"].shape == (55_000, 28, 28, 1) and train["y"].shape == (55_000,)
    assert val["x"].shape == (5_000, 28, 28, 1)
    assert test["x"].shape == (10_000, 28, 28, 1)
    assert train["x"].dtype == np.uint8 and test["y"].dtype == np.uint8
    # All ten digits in every split, and MNIST's published pixel mean.
    assert set(np.unique(val["y"])) == set(range(10))
    all_train = np.concatenate([train["x"], val["x"]])
    assert abs(all_train.mean() / 255 - 0.1306605) < 1e-6


def test_train_subset_keeps_that_many(raw):
    write_params(raw, preprocess={"val_size": 100, "seed": 1, "train_subset": 300})
    assert run_stage("pipeline.preprocess", raw).returncode == 0
    assert len(np.load(raw / "data" / "prepared" / "train.npz")["y"]) == 300
    assert len(np.load(raw / "data" / "prepared" / "val.npz")["y"]) == 100


def test_split_is_disjoint_and_seeded():
    x = np.arange(1000)
    (train_x, _), (val_x, _) = split(x, x, val_size=200, seed=7, train_subset=None)
    assert len(val_x) == 200 and len(train_x) == 800
    assert not set(train_x) & set(val_x)
    (again, _), _ = split(x, x, val_size=200, seed=7, train_subset=None)
    assert np.array_equal(train_x, again)


def corrupt(raw: Path, content: bytes) -> None:
    (raw / "data" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(content))


def assert_failed_cleanly(raw: Path, *expected: str) -> None:
    write_params(raw)
    result = run_stage("pipeline.preprocess", raw)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: preprocess: ") and "train-images-idx3-ubyte.gz" in message
    for text in expected:
        assert text in message
    assert not (raw / "data" / "prepared").exists()


def test_the_same_arrays_make_the_same_file(tmp_path):
    """So that DVC sees an unchanged split as unchanged: new corrections from the app, with
    feedback_repeat 0, re-run preprocess but not train (np.savez stamps the time)."""
    x, y = np.arange(784, dtype=np.uint8).reshape(1, 28, 28, 1), np.array([7], np.uint8)
    save_arrays(tmp_path / "first.npz", x=x, y=y, feedback_digest="", feedback_digits=0)
    time.sleep(2.1)  # zip stores times to 2 s: a time stamp would now differ
    save_arrays(tmp_path / "second.npz", x=x, y=y, feedback_digest="", feedback_digits=0)
    assert (tmp_path / "first.npz").read_bytes() == (tmp_path / "second.npz").read_bytes()
    assert np.load(tmp_path / "second.npz")["x"].tolist() == x.tolist()


def test_wrong_magic_number(raw):
    corrupt(raw, b"\x00\x00\x08\x01" + bytes(100))
    assert_failed_cleanly(raw, "expected magic number 0x00000803, found 0x00000801")


def test_wrong_dimensions(raw):
    corrupt(raw, b"\x00\x00\x08\x03" + (60000).to_bytes(4, "big") + (32).to_bytes(4, "big") * 2)
    assert_failed_cleanly(raw, "expected dimensions (60000, 28, 28), found (60000, 32, 32)")


def test_truncated_idx(raw):
    header = b"\x00\x00\x08\x03" + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    corrupt(raw, header + bytes(1000))
    assert_failed_cleanly(raw, "expected 47040000 bytes of data after the header, found 1000")


def test_not_gzip(raw):
    (raw / "data" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(b"plain text")
    assert_failed_cleanly(raw, "cannot read as gzip")
