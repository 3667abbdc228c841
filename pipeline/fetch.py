"""Stage 1: download the four MNIST IDX files and verify them.

Sources are tried in order: $MNIST_MIRROR (a local folder or a URL) when set, then
the mirrors in params.yaml. A file is accepted only when the sha256 of its
decompressed bytes is the published one; it is written under a temporary name and
renamed only once verified, so a failed download never leaves a partial file.
"""

import gzip
import hashlib
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from core.errors import UserError
from core.params import load_params
from core.paths import RAW_DIR

# sha256 of the decompressed IDX bytes: the same for every honest mirror,
# whatever gzip header the mirror wrote.
FILES = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


class FetchError(UserError):
    """One source failed for one file; the message says why."""


def sources(mirrors: list[str]) -> list[str]:
    """$MNIST_MIRROR first (a relative folder is taken from the repository root), then mirrors."""
    mirror = os.environ.get("MNIST_MIRROR")
    if not mirror:
        return mirrors
    if "://" not in mirror:
        # DVC_ROOT is the user's repository even when `dvc exp run --temp` runs in a copy.
        mirror = str(Path(os.environ.get("DVC_ROOT", ".")) / mirror)
    return [mirror, *mirrors]


def _download(url: str, out: BinaryIO, timeout: float, retries: int, name: str) -> None:
    for attempt in range(1, retries + 1):
        out.seek(0)
        out.truncate()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                size = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=size, unit="B", unit_scale=True, desc=name, leave=False) as bar:
                    for chunk in iter(lambda: response.read(1 << 16), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
            return
        except urllib.error.HTTPError as error:
            if error.code < 500:  # a missing file stays missing: do not retry
                raise FetchError(f"HTTP {error.code} {error.reason}") from None
            reason = f"HTTP {error.code} {error.reason}"
        except (urllib.error.URLError, OSError) as error:
            reason = str(getattr(error, "reason", error))
        if attempt < retries:
            print(f"fetch: {url}: {reason}; retrying", file=sys.stderr)
            time.sleep(2 ** (attempt - 1))
    raise FetchError(f"unreachable after {retries} attempts ({reason})")


def _copy(source: str, name: str, out: BinaryIO, timeout: float, retries: int) -> None:
    if "://" in source:
        _download(source.rstrip("/") + "/" + name, out, timeout, retries, name)
        return
    try:
        with open(Path(source) / name, "rb") as f:
            shutil.copyfileobj(f, out)
    except OSError as error:
        raise FetchError(f"cannot read {Path(source) / name}: {error.strerror}") from None


def decompressed_sha256(path: Path) -> str:
    """sha256 of a gzip file's content; FetchError when it is not a whole gzip file."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except gzip.BadGzipFile:
        raise FetchError("expected a gzip file, found other bytes") from None
    except EOFError:
        raise FetchError("expected a complete gzip file, found a truncated one") from None
    except zlib.error as error:
        raise FetchError(f"expected valid gzip data, found corrupt data ({error})") from None
    return digest.hexdigest()


def fetch_file(name: str, source: str, out_dir: Path, timeout: float, retries: int) -> None:
    """Copy one verified file from one source into out_dir, or raise FetchError."""
    fd, tmp_name = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _copy(source, name, out, timeout, retries)
        found = decompressed_sha256(tmp)
        if found != FILES[name]:
            raise FetchError(
                f"expected sha256 {FILES[name]} of the decompressed bytes, found {found}"
            )
        tmp.chmod(0o644)  # mkstemp creates files readable by their owner only
        tmp.replace(out_dir / name)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(out_dir: Path, mirrors: list[str], timeout: float, retries: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tried = sources(mirrors)
    if not tried:
        raise FetchError("fetch: no source: set MNIST_MIRROR or list fetch.mirrors")
    for name in FILES:
        failures = []
        for source in tried:
            try:
                fetch_file(name, source, out_dir, timeout, retries)
                print(f"fetch: {name} from {source}: verified")
                break
            except FetchError as error:
                failures.append(f"from {source}: {error}")
        else:
            raise FetchError(f"fetch: {name}: " + "; ".join(failures))


def main() -> None:
    params = load_params()["fetch"]
    fetch(RAW_DIR, params["mirrors"], params["timeout"], params["retries"])


if __name__ == "__main__":
    from core.errors import command

    command(main)
