"""Send picture files to a running endpoint and print the digits read in each.

python -m serving.client drawing.png photo.jpg --url http://127.0.0.1:5001
"""

import argparse
from pathlib import Path

from serving.contract import EndpointError, read_endpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="PNG or JPEG pictures")
    parser.add_argument("--url", default="http://127.0.0.1:5001")
    args = parser.parse_args()
    try:
        pictures = [path.read_bytes() for path in args.files]
        results = read_endpoint(args.url, pictures)
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
