"""Latency and throughput of the registered model: over HTTP and in process.

    python bench/serving.py [--model-uri URI] [--requests 200]

Prints, for `mlflow models serve` of the pictures-to-digits model and for the same pyfunc
called in process: the median and 95th-percentile latency of one request with one 28x28
digit and of one request with a 600x200 picture of five digits, and the throughput of
batched requests (digits per second). The baseline is `mlflow models serve` of the plain
Keras-flavour model, one 28x28 digit per request. Needs a trained model (`make run`).
"""

import argparse
import http.client
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from endpoints import five_digit_picture, keras_model, serve  # noqa: E402  (bench/endpoints.py)

from core.paths import MODEL_PATH, RAW_DIR  # noqa: E402
from core.registry import alias_uri  # noqa: E402
from core.store import tracking_uri, use_store  # noqa: E402
from digit_reader.contract import png, read_model  # noqa: E402
from pipeline.preprocess import IMAGES_MAGIC, read_idx  # noqa: E402
from serving.client import request_body  # noqa: E402

BATCH = 64


def percentiles(seconds: list[float]) -> tuple[float, float]:
    return float(np.median(seconds) * 1000), float(np.percentile(seconds, 95) * 1000)


def measure(call, body, repeat: int) -> list[float]:
    for _ in range(5):  # warm-up: tracing, caches, connections
        call(body)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call(body)
        times.append(time.perf_counter() - started)
    return times


def poster(url: str):
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port))  # kept alive, like a client would

    def post(body: bytes) -> dict:
        connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        return answer

    return post


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", help="a registry URI (default: the champion)")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    model_uri = args.model_uri or alias_uri()
    use_store()

    import mlflow

    digits = read_idx(RAW_DIR / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, (10_000, 28, 28))
    one = png(digits[0])
    five = png(five_digit_picture(digits[:5]))
    batch = [png(d) for d in digits[:BATCH]]
    n = args.requests
    rows = []

    model = mlflow.pyfunc.load_model(model_uri)
    assert read_model(model, [five])[0]["digits"] != ""

    def local(pictures):
        return read_model(model, pictures)

    single = percentiles(measure(local, [one], n))
    several = percentiles(measure(local, [five], n))
    batched = measure(local, batch, max(n // 10, 10))
    rows.append(("pyfunc in process", single, several, BATCH / np.median(batched)))

    with serve(tracking_uri(), model_uri) as (url, _):
        post = poster(url)
        single = percentiles(measure(post, request_body([one]), n))
        several = percentiles(measure(post, request_body([five]), n))
        batched = measure(post, request_body(batch), max(n // 10, 10))
        rows.append(("mlflow models serve, pictures", single, several, BATCH / np.median(batched)))

    # Baseline: the bare Keras network behind mlflow models serve, raw pixels in.
    with tempfile.TemporaryDirectory() as tmp:
        path = keras_model(Path(tmp), MODEL_PATH)
        with serve(tracking_uri(), path) as (url, _):
            post = poster(url)
            body = json.dumps({"inputs": digits[:1, :, :, None].tolist()}).encode()
            single = percentiles(measure(post, body, n))
            rows.append(("baseline: Keras flavour, raw pixels", single, None, None))

    cpu = platform.processor() or platform.machine()
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, {cpu}")
    print(f"model: {model_uri}; {n} requests each; batches of {BATCH} digits\n")
    print(
        "| path | 1 digit median / p95 (ms) | 600x200, 5 digits median / p95 (ms) "
        "| batched (digits/s) |"
    )
    print("| --- | --- | --- | --- |")
    for name, single, several, rate in rows:
        five_text = f"{several[0]:.1f} / {several[1]:.1f}" if several else "n/a"
        rate_text = f"{rate:.0f}" if rate else "n/a"
        print(f"| {name} | {single[0]:.1f} / {single[1]:.1f} | {five_text} | {rate_text} |")


if __name__ == "__main__":
    main()
