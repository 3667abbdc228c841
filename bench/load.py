"""Load on the endpoints: requests per second, latency percentiles, errors and memory.

    python bench/load.py [--seconds 10] [--soak 10000]
    python bench/load.py --quick    # 2 workers, concurrency 4, short runs: does it still run?

Drives `python -m serving` and `python -m serving.production` on 127.0.0.1 with Debian's
`hey` (apt install hey), for 1 and 2 workers at concurrency 1, 4 and 16, each run
bounded by --seconds. Two request kinds, built with the client contract: one 28x28
digit, and a 600x200 picture of five digits. The model is this working tree's
pictures-to-digits model on models/model.keras (`make run` first), registered in a
store of the benchmark's own. In the same run, on the same servers, the baselines: a
pyfunc that does nothing (the serving stack's own ceiling) and the bare network in
MLflow's Keras flavour (raw pixels in). Then, on the production endpoint with 2
workers: --soak requests at concurrency 16, with memory before and after, 60 s of
load during which the alias moves to another version, and 30 s at concurrency 8
during which one of the two model servers is killed; and its throughput with its
metrics and answer log on and off (`--no-metrics`): two endpoints side by side, the
load alternating between them, five times each.
"""

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from endpoints import (  # noqa: E402  (bench/endpoints.py)
    bench_store,
    five_digit_picture,
    keras_model,
    production,
    serve,
    server_memory,
)
from machine import cpu_name  # noqa: E402  (bench/machine.py)

from core.paths import MODEL_PATH, RAW_DIR  # noqa: E402
from core.registry import model_name  # noqa: E402
from digit_reader.contract import png  # noqa: E402
from pipeline.preprocess import IMAGES_MAGIC, read_idx  # noqa: E402
from serving.client import post, request_body  # noqa: E402

CONCURRENCY = (1, 4, 16)
WORKERS = (1, 2)
SWITCH_LIMIT = 120  # seconds a switch may take, however short the load around it
# --quick: the same rows for 2 workers at concurrency 4 only, and shorter load.
QUICK = {
    **{"concurrency": (4,), "workers": (2,), "seconds": 1, "soak": 100},
    **{"switch": 10, "death": 10, "pairs": 1},
}
SERVE, PRODUCTION = "python -m serving", "python -m serving.production"
MODEL, IDENTITY = "pictures-to-digits", "identity pyfunc (baseline)"


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
    digits = read_idx(RAW_DIR / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, (10_000, 28, 28))
    contents = {
        "1 digit": request_body([png(digits[0])]),
        "5 digits": request_body([png(five_digit_picture(digits[:5]))]),
        "raw pixels": json.dumps({"inputs": digits[:1, :, :, None].tolist()}).encode(),
    }
    for name, content in contents.items():
        (folder / name.replace(" ", "-")).write_bytes(content)
    return {name: folder / name.replace(" ", "-") for name in contents}


def measure(url: str, pid: int, kinds: dict[str, Path], seconds: float, levels) -> dict:
    """{(request kind, concurrency): (Result, memory before, memory after)} for one server,
    at each concurrency of levels."""
    for body in kinds.values():
        hey(url, body, concurrency=4, requests=100)  # warm-up: tracing, caches
    before = server_memory(pid)
    results = {
        (kind, concurrency): hey(url, body, concurrency, seconds)
        for kind, body in kinds.items()
        for concurrency in levels
    }
    after = server_memory(pid)
    return {key: (result, before, after) for key, result in results.items()}


def hey_in_background(url: str, body: Path, concurrency: int, seconds: float):
    """A hey run for `seconds`, started; its report comes from `.communicate()`."""
    command = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST"]
    command += ["-T", "application/json", "-D", str(body), f"{url}/invocations"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def start_up(store: str, uri: str, body: Path) -> tuple[float, int, int]:
    """Seconds from starting `python -m serving` (1 worker) on uri to its first answer
    to body, and the resident bytes then: of its whole process tree, and of its largest
    process (the uvicorn worker that holds the model)."""
    started = time.monotonic()
    with serve(store, uri, workers=1) as (url, pid):
        post(url, body.read_bytes())
        seconds = time.monotonic() - started
        root = psutil.Process(pid)
        largest = max(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        return seconds, server_memory(pid), largest


def switch_under_load(url: str, body: Path, seconds: float) -> tuple[Result, float]:
    """hey at concurrency 16 while the alias `champion` moves to the twin (version 2):
    hey's result, and the seconds from the move to the first answer of version 2."""
    import mlflow

    from core.registry import model_name

    load = hey_in_background(url, body, 16, seconds)
    time.sleep(seconds / 6)
    mlflow.MlflowClient().set_registered_model_alias(model_name(), "champion", "2")
    moved = time.monotonic()
    while post(url, body.read_bytes()).version != "2":
        if time.monotonic() - moved > max(seconds, SWITCH_LIMIT):
            raise SystemExit("error: the endpoint did not switch to version 2")
    switched = time.monotonic() - moved
    output, _ = load.communicate(timeout=seconds + 120)
    return parse(output), switched


def death_under_load(url: str, pid: int, body: Path, seconds: float) -> tuple[Result, float]:
    """hey at concurrency 8 while one model server of the endpoint at pid is killed with
    its children (SIGKILL, as the out-of-memory killer does): hey's result, and the
    seconds from the kill until that server answers again on its port."""
    from serving.client import wait_until_ready

    load = hey_in_background(url, body, 8, seconds)
    time.sleep(seconds / 6)
    [victim, *_] = [
        p
        for p in psutil.Process(pid).children(recursive=True)
        if "serving.model_app:app" in p.cmdline()
    ]
    port = victim.cmdline()[victim.cmdline().index("--port") + 1]
    for process in [victim, *victim.children(recursive=True)]:
        process.kill()
    killed = time.monotonic()
    time.sleep(1)  # until the endpoint has seen it die
    wait_until_ready(f"http://127.0.0.1:{port}", timeout=seconds * 4)
    back = time.monotonic() - killed
    output, _ = load.communicate(timeout=seconds + 120)
    return parse(output), back


def metrics_cost(store: str, body: Path, seconds: float, folder: Path, pairs: int) -> dict:
    """Requests/s of the production endpoint (2 workers, one digit, concurrency 16) with
    its metrics on and off, alternately, `pairs` times each: {on: [rates]}. Both
    endpoints run side by side all along and the load goes to one, then the other, so
    that both see the same machine (a start that leaves the cores busier, a neighbour's
    job); the pairs alternate which runs first (on-off, off-on, ...), as the first of
    two runs is not always as fast as the second."""
    rates = {True: [], False: []}
    with contextlib.ExitStack() as endpoints:
        urls = {}
        for on in (True, False):
            extra = () if on else ("--no-metrics",)
            home = folder / f"metrics-{'on' if on else 'off'}"
            urls[on], _ = endpoints.enter_context(production(store, "champion", 2, home, *extra))
        for on in (True, False):
            hey(urls[on], body, 16, seconds=min(seconds, 3))  # warm-up, at the same load
        for pair in range(pairs):
            for on in (True, False) if pair % 2 == 0 else (False, True):
                rates[on].append(hey(urls[on], body, 16, seconds).rate)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="per run (10)")
    parser.add_argument("--soak", type=int, default=10_000, help="requests (10000)")
    parser.add_argument("--quick", action="store_true", help="2 workers, concurrency 4, short")
    args = parser.parse_args()
    levels, worker_counts, switch, death, pairs = CONCURRENCY, WORKERS, 60, 30, 5
    if args.quick:
        levels, worker_counts = QUICK["concurrency"], QUICK["workers"]
        args.seconds, args.soak, switch, death, pairs = (
            QUICK[k] for k in ("seconds", "soak", "switch", "death", "pairs")
        )
    name = model_name()
    table = {}  # (endpoint, model, workers, kind, concurrency): (Result, before, after)

    def add(endpoint: str, model: str, workers: int, rows: dict) -> None:
        table.update({(endpoint, model, workers, *key): row for key, row in rows.items()})

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = bench_store(folder, MODEL_PATH)
        body = bodies(folder)
        pictures = {kind: body[kind] for kind in ("1 digit", "5 digits")}
        keras = keras_model(folder, MODEL_PATH)
        # Before any load, so that nothing else runs on the cores.
        starts = {
            model: start_up(store, f"models:/{name}@{alias}", body["1 digit"])
            for model, alias in ((MODEL, "champion"), (IDENTITY, "identity"))
        }
        for workers in worker_counts:
            for model, uri, kinds in (
                (MODEL, f"models:/{name}@champion", pictures),
                (IDENTITY, f"models:/{name}@identity", pictures),
                ("Keras flavour (baseline)", keras, {"raw pixels": body["raw pixels"]}),
            ):
                with serve(store, uri, workers) as (url, pid):
                    add(SERVE, model, workers, measure(url, pid, kinds, args.seconds, levels))
            for model, alias in ((MODEL, "champion"), (IDENTITY, "identity")):
                home = folder / f"{alias}-{workers}"
                with production(store, alias, workers, home) as (url, pid):
                    rows = measure(url, pid, pictures, args.seconds, levels)
                    add(PRODUCTION, model, workers, rows)
        with production(store, "champion", 2, folder / "soak") as (url, pid):
            hey(url, body["1 digit"], concurrency=4, requests=200)
            before = server_memory(pid)
            soaked = hey(url, body["1 digit"], concurrency=16, requests=args.soak)
            after = server_memory(pid)
            switched, switch_seconds = switch_under_load(url, body["1 digit"], switch)
            survived, back_seconds = death_under_load(url, pid, body["1 digit"], death)
        watched = metrics_cost(store, body["1 digit"], args.seconds, folder, pairs)
    report(table, args.seconds, max(levels), worker_counts)
    mb = 1 / 2**20
    for model, (seconds, tree, largest) in starts.items():
        print(
            f"- {SERVE}, 1 worker, {model}, idle machine: first answer {seconds:.1f} s after "
            f"the start; resident {tree * mb:.0f} MB in all its processes, "
            f"{largest * mb:.0f} MB in the largest"
        )
    print(
        f"- {PRODUCTION}, 2 workers, {soaked.count} requests at concurrency 16: "
        f"{soaked.rate:.0f}/s, {soaked.errors} errors, p99/p50 {soaked.p99 / soaked.p50:.2f}; "
        f"memory {before * mb:.0f} MB before, {after * mb:.0f} MB after "
        f"({(after / before - 1) * 100:+.1f}%)"
    )
    print(
        f"- alias moved during {switch} s of load at concurrency 16: version 2 answered "
        f"{switch_seconds:.1f} s after the move; {switched.errors} errors of "
        f"{switched.count} requests, p99 {switched.p99:.0f} ms"
    )
    print(
        f"- one of the 2 model servers killed (SIGKILL, with its children) during {death} s of "
        f"load at concurrency 8: {survived.errors} errors of {survived.count} requests; "
        f"it answered again {back_seconds:.1f} s after the kill"
    )
    on, off = (statistics.median(watched[key]) for key in (True, False))
    pairs = list(zip(watched[True], watched[False], strict=True))
    print(
        f"- {PRODUCTION}, 2 workers, one digit, concurrency 16, metrics on / off, alternately "
        f"({', '.join(f'{a:.0f}/{b:.0f}' for a, b in pairs)} requests/s): medians "
        f"{on:.0f} / {off:.0f} = {on / off:.3f}; median of the pairs' ratios "
        f"{statistics.median(a / b for a, b in pairs):.3f}"
    )


def report(table: dict, seconds: float, top: int, worker_counts: tuple[int, ...]) -> None:
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs; {seconds:g} s per run\n")
    print(
        "| endpoint | model | workers | request | concurrency | requests/s "
        "| p50 / p95 / p99 (ms) | errors | memory before / after (MB) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    mb = 1 / 2**20
    for key, (r, before, after) in table.items():
        print(
            "| " + " | ".join(str(part) for part in key) + f" | {r.rate:.0f} "
            f"| {r.p50:.1f} / {r.p95:.1f} / {r.p99:.1f} | {r.errors} of {r.count} "
            f"| {before * mb:.0f} / {after * mb:.0f} |"
        )
    print(f"\nOne digit per request, concurrency {top}:")
    for endpoint in (SERVE, PRODUCTION):
        ours = table[(endpoint, MODEL, 2, "1 digit", top)][0]
        identity = table[(endpoint, IDENTITY, 2, "1 digit", top)][0]
        workers = ""
        if 1 in worker_counts:
            one_worker = table[(endpoint, MODEL, 1, "1 digit", top)][0]
            workers = f"2 workers / 1 worker {ours.rate / one_worker.rate:.2f}; "
        print(
            f"- {endpoint}, 2 workers: model / identity pyfunc {ours.rate / identity.rate:.2f}; "
            f"{workers}p99 / p50 {ours.p99 / ours.p50:.2f}"
        )


if __name__ == "__main__":
    main()
