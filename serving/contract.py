"""How clients talk to the registered model: the one definition every client uses.

A request carries pictures (PNG or JPEG bytes), each base64-encoded in the column
`image` of MLflow's `dataframe_split` JSON. The answer holds, per picture, `digits` (the
digits read, left to right) and `boxes` (one per digit: its box in picture pixels, the
digit, its confidence, the ten digits' probabilities (summing to 1 less the network's
belief that the box is not one whole digit), and `pixels`: the 28x28 digit that the
network read, light ink on black as in MNIST, a base64 PNG). The model refuses what exceeds the
limits below with HTTP 400 and a message naming the limit.

The model itself (serving/digit_model.py), the evaluate stage, the drawing app, the
command-line client, the benchmarks and the tests all use this module. Importing it
loads neither the model nor TensorFlow.
"""

import base64
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

COLUMN = "image"
MAX_IMAGE_BYTES = 4_000_000  # per picture, before base64 encoding
MAX_IMAGE_PIXELS = 12_000_000  # per picture (for example 4000 x 3000)
MAX_BATCH = 256  # pictures per request
MAX_REQUEST_BYTES = 16_000_000  # per request body, enforced by the production endpoint
START_HINT = "start one with `python -m serving`"
# The production endpoint (python -m serving.production) names in this header the
# registered version that answered.
VERSION_HEADER = "X-Model-Version"


class EndpointError(Exception):
    """The endpoint is not there, or refused the request; the message says which."""


def png(pixels: np.ndarray) -> bytes:
    """A greyscale picture (2-D uint8 array, or 28x28x1) as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8).squeeze()).save(buffer, "PNG")
    return buffer.getvalue()


def encode(picture: bytes) -> str:
    """One picture's bytes as the model reads them: base64 text."""
    return base64.b64encode(picture).decode("ascii")


def request_body(pictures: list[bytes]) -> bytes:
    """The JSON body of one request to /invocations."""
    rows = [[encode(picture)] for picture in pictures]
    return json.dumps({"dataframe_split": {"columns": [COLUMN], "data": rows}}).encode()


def read_model(model, pictures: list[bytes]) -> list[dict]:
    """What a loaded pyfunc model reads in each picture, in batches of at most MAX_BATCH."""
    import pandas as pd

    results = []
    for start in range(0, len(pictures), MAX_BATCH):
        batch = [encode(picture) for picture in pictures[start : start + MAX_BATCH]]
        results += model.predict(pd.DataFrame({COLUMN: batch})).to_dict("records")
    return results


class Reply(NamedTuple):
    status: int  # HTTP status
    answer: dict  # the JSON answer
    version: str | None  # the model version that answered, where the endpoint says


def post(url: str, body: bytes, timeout: float = 60) -> Reply:
    """POST a body to the endpoint's /invocations."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, json.load(response), response.headers[VERSION_HEADER])
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        try:
            answer = json.loads(text)
        except ValueError:  # an answer from something other than the model
            answer = {"message": text.strip()[:200] or error.reason}
        return Reply(error.code, answer, error.headers[VERSION_HEADER])
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise EndpointError(f"no endpoint answers at {url} ({reason}): {START_HINT}") from None


def read_endpoint(url: str, pictures: list[bytes], timeout: float = 60) -> list[dict]:
    """What the endpoint at url reads in each picture, in requests of at most MAX_BATCH."""
    results = []
    for start in range(0, len(pictures), MAX_BATCH):
        results += predictions(
            url, post(url, request_body(pictures[start : start + MAX_BATCH]), timeout)
        )
    return results


def predictions(url: str, reply: Reply) -> list[dict]:
    """The answers of a reply from the endpoint at url; EndpointError if it refused."""
    if reply.status != 200:
        raise EndpointError(
            f"{url} answered {reply.status}: {reply.answer.get('message', reply.answer)}"
        )
    return reply.answer["predictions"]


def wait_until_ready(
    url: str, timeout: float = 180, running: Callable[[], bool] = lambda: True
) -> None:
    """Return once the endpoint answers /ping; EndpointError after timeout seconds, or
    as soon as `running` says the server process has stopped."""
    deadline = time.monotonic() + timeout
    while running():
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/ping", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise EndpointError(
                    f"no endpoint answers at {url} within {timeout:g} s: {START_HINT}"
                ) from None
            time.sleep(0.25)
    raise EndpointError(f"the server for {url} stopped before it answered")
