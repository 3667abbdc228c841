"""Load params.yaml, once per command, and reject bad values before any work starts."""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.errors import UserError
from core.paths import PARAMS_PATH, shown

MNIST_TRAIN_SIZE = 60_000
MNIST_TEST_SIZE = 10_000


@dataclass(frozen=True)
class Rule:
    allowed: str  # what the message tells the user is allowed
    check: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def int_from(low: int, high: int | None = None) -> Rule:
    allowed = f"a whole number from {low} to {high}" if high else f"a whole number >= {low}"
    return Rule(allowed, lambda v: _is_int(v) and v >= low and (high is None or v <= high))


BOOLEAN = Rule("true or false", lambda v: isinstance(v, bool))
FRACTION = Rule("a number from 0 to 1", lambda v: _is_number(v) and 0 <= v <= 1)
POSITIVE_NUMBER = Rule("a number > 0", lambda v: _is_number(v) and v > 0)
NAME = Rule("a non-empty string", lambda v: isinstance(v, str) and v.strip() != "")
URL_LIST = Rule(
    "a list of URLs (strings), possibly empty",
    lambda v: isinstance(v, list) and all(isinstance(u, str) and u for u in v),
)

SCHEMA: dict[str, dict[str, Rule]] = {
    "fetch": {"mirrors": URL_LIST, "timeout": POSITIVE_NUMBER, "retries": int_from(1)},
    "preprocess": {
        "val_size": int_from(1, MNIST_TRAIN_SIZE - 1),
        "seed": int_from(0),
        # The real upper bound depends on val_size; it is checked in _check_cross_fields.
        "train_subset": Rule(
            "null or a whole number >= 1", lambda v: v is None or (_is_int(v) and v >= 1)
        ),
        "feedback_repeat": int_from(0),
        "feedback_held_out": FRACTION,
    },
    "pieces": {"numbers": int_from(0), "seed": int_from(0)},
    "train": {
        "epochs": int_from(1),
        "batch_size": int_from(1),
        "learning_rate": POSITIVE_NUMBER,
        "warmup_epochs": int_from(0),
        "mixed_precision": BOOLEAN,
        "augment": BOOLEAN,
        "seed": int_from(0),
    },
    "lines": {
        "numbers": int_from(1),
        "epochs": int_from(1),
        "batch_size": int_from(1),
        "learning_rate": POSITIVE_NUMBER,
        "seed": int_from(0),
    },
    "evaluate": {"pictures": int_from(1, MNIST_TEST_SIZE), "numbers": int_from(1)},
    "mlflow": {"experiment": NAME, "model_name": NAME},
    "promote": {"min_accuracy": FRACTION},
}


class ParamsError(UserError, ValueError):
    """A parameter file that cannot be used; the message names the value and what is allowed."""


def validate(params: Any) -> dict:
    """Return params unchanged, or raise ParamsError naming the first bad parameter."""
    if not isinstance(params, dict):
        raise ParamsError(f"expected a mapping of stages, found {type(params).__name__}")
    for section in params:
        if section not in SCHEMA:
            raise ParamsError(f"unknown section '{section}' (known: {', '.join(SCHEMA)})")
    for section, rules in SCHEMA.items():
        values = params.get(section)
        if not isinstance(values, dict):
            raise ParamsError(f"missing section '{section}' (keys: {', '.join(rules)})")
        for key in values:
            if key not in rules:
                raise ParamsError(
                    f"unknown key '{section}.{key}' (known keys of {section}: {', '.join(rules)})"
                )
        for key, rule in rules.items():
            if key not in values:
                raise ParamsError(f"missing '{section}.{key}' ({rule.allowed})")
            if not rule.check(values[key]):
                raise ParamsError(
                    f"{section}.{key} = {values[key]!r} is invalid: expected {rule.allowed}"
                )
    _check_cross_fields(params)
    return params


def _check_cross_fields(params: dict) -> None:
    train = params["train"]
    if train["warmup_epochs"] >= train["epochs"]:
        raise ParamsError(
            f"train.warmup_epochs = {train['warmup_epochs']} is invalid: expected a whole "
            f"number from 0 to {train['epochs'] - 1} (fewer than train.epochs)"
        )
    lines = params["lines"]
    if lines["numbers"] < lines["batch_size"]:
        raise ParamsError(
            f"lines.numbers = {lines['numbers']} is invalid: expected at least "
            f"lines.batch_size ({lines['batch_size']}), the numbers of one batch"
        )
    prep = params["preprocess"]
    room = MNIST_TRAIN_SIZE - prep["val_size"]
    if prep["train_subset"] is not None and prep["train_subset"] > room:
        raise ParamsError(
            f"preprocess.train_subset = {prep['train_subset']} is invalid: expected null or a "
            f"whole number from 1 to {room} (60,000 training images minus val_size)"
        )


@functools.cache
def load_params(path: Path = PARAMS_PATH) -> dict:
    """The validated parameters, read once per command (so all of it sees the same
    values); ParamsError naming the file and what is wrong with it."""
    name = shown(path)
    try:
        params = yaml.safe_load(Path(path).read_text())
        return validate(params)
    except OSError as error:
        raise ParamsError(f"cannot read {name}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{name} is not valid YAML: {error}") from None
    except ParamsError as error:
        raise ParamsError(f"{name}: {error}") from None
