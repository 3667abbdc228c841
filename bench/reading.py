"""How well the registered model reads whole written numbers, set by set.

    python bench/reading.py [--model-uri URI] [--count 200] [--seed 0]
    python bench/reading.py --keras models/model.keras    # a trained network, packaged here

(Not bench/numbers.py: a script there would hide the standard library's `numbers`
module from NumPy in every script of this folder.)

Builds the sets of synthetic/numbers.py from the MNIST test digits (data/prepared/test.npz,
written by `dvc repro`) and the seed, sends every picture through the pictures-to-digits
model as a client would, and prints per set: whole numbers right, digits right (in the
numbers whose count of digits came out right), the kinds of miss (too few digits, too
many, a wrong digit), and the milliseconds per number. The `evaluate` stage reports the
first 100 numbers of seed 0 of the sets canvases, drawn, hard and photo.
"""

import argparse
import contextlib
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_name  # noqa: E402  (bench/machine.py)

from core.paths import PREPARED_DIR  # noqa: E402
from core.registry import alias_uri  # noqa: E402
from pipeline.evaluate import read_all  # noqa: E402
from synthetic.numbers import make_sets, score  # noqa: E402


@contextlib.contextmanager
def loaded_model(model_uri: str, keras_path: Path | None):
    """The registered model, or a .keras network packaged here as the registered one is."""
    from pipeline.evaluate import packaged_model

    if keras_path:
        with packaged_model(keras_path) as model:
            yield model
        return
    import mlflow

    from core.store import use_store

    use_store()
    yield mlflow.pyfunc.load_model(model_uri)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", help="a registry URI (default: the champion)")
    parser.add_argument("--keras", type=Path, help="a .keras network to package and read with")
    parser.add_argument("--count", type=int, default=200, help="numbers per set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    test = np.load(PREPARED_DIR / "test.npz")
    sets = make_sets(test["x"][..., 0], test["y"], args.seed, args.count)
    model_uri = args.model_uri or alias_uri()
    with loaded_model(model_uri, args.keras) as model:
        print(f"model: {args.keras or model_uri}; {args.count} numbers per set, seed {args.seed}")
        print(f"machine: {cpu_name()}, {platform.node()}\n")
        print_table(sets, model)


def print_table(sets: dict, model) -> None:
    """Per set: whole numbers right, digits right, the kinds of miss, time per number."""

    columns = ["set", "whole numbers right", "digits right", "too few", "too many"]
    columns += ["wrong digit", "ms per number"]
    print("| " + " | ".join(columns) + " |\n|" + " --- |" * len(columns))
    for name, numbers in sets.items():
        started = time.perf_counter()
        readings = read_all(model, [n.png for n in numbers])
        ms = (time.perf_counter() - started) * 1000 / len(numbers)
        s = score([n.digits for n in numbers], readings)
        print(
            f"| {name} | {s['right']:.1%} | {s['digits_right']:.2%} | {s['too_few']} "
            f"| {s['too_many']} | {s['wrong_digit']} | {ms:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
