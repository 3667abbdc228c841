"""The HTTP client of the endpoints: the one definition every client uses (the app, the
benchmarks, the tests), and a command that sends picture files and prints the digits read.

    python -m serving.client drawing.png photo.jpg --url http://127.0.0.1:5001

What a request holds and its limits are the model's own (digit_reader/contract.py);
this module sends them over HTTP and turns what fails into EndpointError, one line.
"""

import argparse
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from core.errors import UserError, command
from digit_reader.contract import COLUMN, MAX_BATCH, encode

START_HINT = "start one with `python -m serving`"
# The production endpoint (python -m serving.production) names in this header the
# registered version that answered.
VERSION_HEADER = "X-Model-Version"


class EndpointError(UserError):
    """The endpoint is not there, or refused the request; the message says which."""


def request_body(pictures: list[bytes]) -> bytes:
    """The JSON body of one request to /invocations."""
    rows = [[encode(picture)] for picture in pictures]
    return json.dumps({"dataframe_split": {"columns": [COLUMN], "data": rows}}).encode()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="PNG or JPEG pictures")
    parser.add_argument("--url", default="http://127.0.0.1:5001")
    args = parser.parse_args()
    pictures = [path.read_bytes() for path in args.files]
    results = read_endpoint(args.url, pictures)
    for path, result in zip(args.files, results, strict=True):
        if not result["digits"]:
            print(f"{path}: no digits found")
            continue
        confidences = " ".join(f"{b['digit']}:{b['confidence']:.2f}" for b in result["boxes"])
        print(f"{path}: {result['digits']}  ({confidences})")


if __name__ == "__main__":
    command(main, left_whole="nothing was written")
