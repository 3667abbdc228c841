"""Send picture files to a running endpoint and print the digits read in each.

python -m serving.client drawing.png photo.jpg --url http://127.0.0.1:5001
"""

import argparse
import base64
import json
import urllib.error
import urllib.request
from pathlib import Path


class EndpointError(Exception):
    pass


def read_digits(images: list[bytes], url: str, timeout: float = 60) -> list[dict]:
    """One result per picture (PNG or JPEG bytes): {'digits': '42', 'boxes': [...]}."""
    rows = [[base64.b64encode(image).decode("ascii")] for image in images]
    payload = {"dataframe_split": {"columns": ["image"], "data": rows}}
    request = urllib.request.Request(
        f"{url.rstrip('/')}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)["predictions"]
    except urllib.error.HTTPError as error:
        message = json.loads(error.read() or b"{}").get("message", error.reason)
        raise EndpointError(f"{url} answered {error.code}: {message}") from None
    except (urllib.error.URLError, OSError) as error:
        raise EndpointError(
            f"no endpoint answers at {url} ({getattr(error, 'reason', error)}): "
            "start one with `python -m serving`"
        ) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="PNG or JPEG pictures")
    parser.add_argument("--url", default="http://127.0.0.1:5001")
    args = parser.parse_args()
    try:
        images = [path.read_bytes() for path in args.files]
        results = read_digits(images, args.url)
    except OSError as error:
        raise SystemExit(f"error: cannot read {error.filename}: {error.strerror}") from None
    except EndpointError as error:
        raise SystemExit(f"error: {error}") from None
    for path, result in zip(args.files, results, strict=True):
        if not result["digits"]:
            print(f"{path}: no digits found")
            continue
        confidences = " ".join(f"{b['digit']}:{b['confidence']:.2f}" for b in result["boxes"])
        print(f"{path}: {result['digits']}  ({confidences})")


if __name__ == "__main__":
    main()
