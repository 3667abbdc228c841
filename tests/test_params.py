"""Bad parameters are refused before any work starts, naming the parameter and what is allowed."""

import re

import pytest
import yaml

from core.params import ParamsError, validate

from helpers import REPO, run_stage, write_params


def test_the_committed_params_are_valid():
    validate(yaml.safe_load((REPO / "params.yaml").read_text()))


BAD = [
    ("train", {"epochs": 0}, "train.epochs = 0 is invalid: expected a whole number >= 1"),
    ("train", {"epochs": -3}, "train.epochs = -3 is invalid: expected a whole number >= 1"),
    ("train", {"epochs": 2.5}, "train.epochs = 2.5 is invalid: expected a whole number >= 1"),
    (
        "train",
        {"learning_rate": "fast"},
        "train.learning_rate = 'fast' is invalid: expected a number > 0",
    ),
    ("train", {"learning_rate": 0}, "train.learning_rate = 0 is invalid: expected a number > 0"),
    (
        "train",
        {"learning_rate": -1.0},
        "train.learning_rate = -1.0 is invalid: expected a number > 0",
    ),
    ("train", {"epoch": 3}, "unknown key 'train.epoch' (known keys of train: epochs,"),
    (
        "train",
        {"epochs": 2, "warmup_epochs": 2},
        "train.warmup_epochs = 2 is invalid: expected a whole number from 0 to 1 (fewer than train.epochs)",
    ),
    (
        "preprocess",
        {"val_size": 60_000},
        "preprocess.val_size = 60000 is invalid: expected a whole number from 1 to 59999",
    ),
    (
        "preprocess",
        {"val_size": 10_000, "train_subset": 55_000},
        "preprocess.train_subset = 55000 is invalid: expected null or a whole number from 1 to 50000",
    ),
    ("fetch", {"retries": 0}, "fetch.retries = 0 is invalid: expected a whole number >= 1"),
    (
        "lines",
        {"numbers": 10, "batch_size": 64},
        "lines.numbers = 10 is invalid: expected at least lines.batch_size (64), the numbers of one batch",
    ),
    (
        "evaluate",
        {"pictures": 20_000},
        "evaluate.pictures = 20000 is invalid: expected a whole number from 1 to 10000",
    ),
]


@pytest.mark.parametrize("stage, values, message", BAD)
def test_validate_names_the_bad_parameter(stage, values, message):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[stage].update(values)
    with pytest.raises(ParamsError, match="^" + re.escape(message)):
        validate(params)


def test_unknown_section_is_refused():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["trian"] = {"epochs": 3}
    with pytest.raises(ParamsError, match="unknown section 'trian'"):
        validate(params)


@pytest.mark.parametrize(
    "module", ["pipeline.fetch", "pipeline.preprocess", "pipeline.train", "pipeline.lines"]
)
@pytest.mark.parametrize("stage, values, message", BAD)
def test_every_stage_exits_before_working(tmp_path, mirror, module, stage, values, message):
    write_params(tmp_path, **{stage: values})
    result = run_stage(module, tmp_path, MNIST_MIRROR=str(mirror))
    assert result.returncode != 0
    assert result.stderr.startswith(f"error: params.yaml: {message}")
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written
