"""Load on the endpoint: requests per second, latency percentiles, errors and memory.

    python bench/load.py [--model-uri URI] [--seconds 10] [--soak 10000]

Drives `python -m serving` on 127.0.0.1 with Debian's `hey` (apt install hey), for 1
and 2 workers at concurrency 1, 4 and 16, each run bounded by --seconds. Two request
kinds, built with the client contract: one 28x28 digit, and a 600x200 picture of five
digits. In the same run, two baselines on the same server: a pyfunc that does nothing
(the serving stack's own ceiling) and the bare network in MLflow's Keras flavour (raw
pixels in). Then --soak requests at concurrency 16 to 2 workers of the model, with the
server's memory before and after. Needs a trained model (`make run`).
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from endpoints import (  # noqa: E402  (bench/endpoints.py)
    five_digit_picture,
    identity_model,
    keras_model,
    serve,
    server_memory,
)
from machine import cpu_name  # noqa: E402  (bench/machine.py)

from pipeline import tracking  # noqa: E402
from pipeline.paths import MODEL_PATH, RAW_DIR  # noqa: E402
from pipeline.preprocess import IMAGES_MAGIC, read_idx  # noqa: E402
from pipeline.promote import alias_uri  # noqa: E402
from serving.contract import png, request_body  # noqa: E402

CONCURRENCY = (1, 4, 16)
WORKERS = (1, 2)


@dataclass
class Result:
    rate: float  # requests per second
    p50: float  # milliseconds
    p95: float
    p99: float
    errors: int  # failed requests and answers other than 200
    count: int


def hey(url: str, body: Path, concurrency: int, seconds: float = 0, requests: int = 0) -> Result:
    """One hey run against url's /invocations, for `seconds` or for `requests` requests."""
    bound = ["-z", f"{seconds}s"] if seconds else ["-n", str(requests)]
    command = ["hey", *bound, "-c", str(concurrency), "-m", "POST", "-T", "application/json"]
    command += ["-D", str(body), f"{url}/invocations"]
    limit = (seconds or requests / 10) + 120  # a hung run stops the benchmark
    report = subprocess.run(command, capture_output=True, text=True, timeout=limit, check=True)
    return parse(report.stdout)


def parse(report: str) -> Result:
    """The numbers of hey's summary."""
    summary, _, error_part = report.partition("Error distribution:")

    def percentile(p: int) -> float:
        found = re.search(rf"^\s*{p}% in ([\d.]+) secs", summary, re.M)
        return float(found[1]) * 1000 if found else float("nan")

    statuses = {int(s): int(n) for s, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", summary)}
    failed = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", error_part, re.M))
    return Result(
        rate=float(re.search(r"Requests/sec:\s+([\d.]+)", summary)[1]),
        p50=percentile(50),
        p95=percentile(95),
        p99=percentile(99),
        errors=failed + sum(n for s, n in statuses.items() if s != 200),
        count=sum(statuses.values()) + failed,
    )


def bodies(folder: Path) -> dict[str, Path]:
    """The request bodies, as files for hey: one digit, five digits, raw pixels."""
    digits = read_idx(ROOT / RAW_DIR / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, (10_000, 28, 28))
    contents = {
        "1 digit": request_body([png(digits[0])]),
        "5 digits": request_body([png(five_digit_picture(digits[:5]))]),
        "raw pixels": json.dumps({"inputs": digits[:1, :, :, None].tolist()}).encode(),
    }
    for name, content in contents.items():
        (folder / name.replace(" ", "-")).write_bytes(content)
    return {name: folder / name.replace(" ", "-") for name in contents}


def measure(model_uri: str, workers: int, kinds: dict[str, Path], seconds: float) -> list:
    """Rows of the table for one model served by `workers` workers."""
    rows = []
    with serve(model_uri, workers) as (url, pid):
        for body in kinds.values():
            hey(url, body, concurrency=4, requests=100)  # warm-up: tracing, caches
        before = server_memory(pid)
        for kind, body in kinds.items():
            for concurrency in CONCURRENCY:
                rows.append([workers, kind, concurrency, hey(url, body, concurrency, seconds)])
        after = server_memory(pid)
    return [row + [before, after] for row in rows]


def soak(model_uri: str, body: Path, requests: int) -> tuple[Result, int, int]:
    """Many requests at concurrency 16 to 2 workers: the result, memory before and after."""
    with serve(model_uri, workers=2) as (url, pid):
        hey(url, body, concurrency=4, requests=200)
        before = server_memory(pid)
        result = hey(url, body, concurrency=16, requests=requests)
        return result, before, server_memory(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", help="a registry URI (default: the champion)")
    parser.add_argument("--seconds", type=float, default=10, help="per run (10)")
    parser.add_argument("--soak", type=int, default=10_000, help="requests (10000)")
    args = parser.parse_args()
    model_uri = args.model_uri or alias_uri()
    tracking.use_store()
    mb = 1 / 2**20

    with tempfile.TemporaryDirectory() as tmp:
        body = bodies(Path(tmp))
        pictures = {kind: body[kind] for kind in ("1 digit", "5 digits")}
        models = [
            ("pictures-to-digits", model_uri, pictures),
            ("identity pyfunc (baseline)", identity_model(Path(tmp)), pictures),
            (
                "Keras flavour (baseline)",
                keras_model(Path(tmp), ROOT / MODEL_PATH),
                {"raw pixels": body["raw pixels"]},
            ),
        ]
        table = {}
        for name, uri, kinds in models:
            for workers in WORKERS:
                for row in measure(uri, workers, kinds, args.seconds):
                    table[(name, *row[:3])] = row
        soaked, soak_before, soak_after = soak(model_uri, body["1 digit"], args.soak)

    print(f"machine: {cpu_name()}, 2 cores; model {model_uri}; {args.seconds:g} s per run\n")
    print(
        "| model | workers | request | concurrency | requests/s | p50 / p95 / p99 (ms) "
        "| errors | server memory before / after (MB) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (name, workers, kind, concurrency), row in table.items():
        r, before, after = row[3], row[4], row[5]
        print(
            f"| {name} | {workers} | {kind} | {concurrency} | {r.rate:.0f} "
            f"| {r.p50:.1f} / {r.p95:.1f} / {r.p99:.1f} | {r.errors} of {r.count} "
            f"| {before * mb:.0f} / {after * mb:.0f} |"
        )

    def rate(name: str, workers: int) -> float:
        return table[(name, workers, "1 digit", 16)][3].rate

    ours = table[("pictures-to-digits", 2, "1 digit", 16)][3]
    print("\nOne digit, concurrency 16, 2 workers:")
    print(f"- model / identity pyfunc: {ours.rate / rate('identity pyfunc (baseline)', 2):.2f}")
    print(f"- 2 workers / 1 worker: {ours.rate / rate('pictures-to-digits', 1):.2f}")
    print(f"- p99 / p50: {ours.p99 / ours.p50:.2f}")
    print(
        f"- {soaked.count} requests: {soaked.rate:.0f}/s, {soaked.errors} errors, p99/p50 "
        f"{soaked.p99 / soaked.p50:.2f}, server memory {soak_before * mb:.0f} MB before, "
        f"{soak_after * mb:.0f} MB after ({(soak_after / soak_before - 1) * 100:+.1f}%)"
    )


if __name__ == "__main__":
    main()
