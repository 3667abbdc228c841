"""The fetch stage: real MNIST files from a local folder or over HTTP, and every way it can fail."""

import functools
import gzip
import http.server
import shutil
import socket
import threading
from pathlib import Path

import pytest

from pipeline.fetch import FILES

from helpers import run_stage, write_params

FIRST = "train-images-idx3-ubyte.gz"  # fetched first, so a failure there leaves nothing


@pytest.fixture
def http_mirror(mirror):
    """The offline copy served over HTTP on a free loopback port, as a public mirror would be."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def bad_mirror(tmp_path: Path, mirror: Path, first_file_bytes: bytes) -> Path:
    """A copy of the mirror whose first file holds the given bytes."""
    bad = tmp_path / "bad-mirror"
    shutil.copytree(mirror, bad)
    (bad / FIRST).chmod(0o644)
    (bad / FIRST).write_bytes(first_file_bytes)
    return bad


def fetch(tmp_path: Path, source: str, mirrors: list[str] | None = None):
    work = tmp_path / "work"
    work.mkdir()
    write_params(work, fetch={"mirrors": mirrors or [], "retries": 2, "timeout": 5})
    result = run_stage("pipeline.fetch", work, MNIST_MIRROR=source)
    return result, work / "data" / "raw"


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetches_and_verifies_from_a_local_folder(tmp_path, mirror):
    result, out = fetch(tmp_path, str(mirror))
    assert result.returncode == 0, result.stderr
    assert listing(out) == sorted(FILES)
    for name in FILES:
        assert (out / name).read_bytes() == (mirror / name).read_bytes()


def test_downloads_over_http(tmp_path, http_mirror):
    result, out = fetch(tmp_path, http_mirror)
    assert result.returncode == 0, result.stderr
    assert listing(out) == sorted(FILES)


def test_falls_back_to_the_next_mirror(tmp_path, mirror, http_mirror):
    result, out = fetch(tmp_path, str(tmp_path / "missing"), mirrors=[http_mirror])
    assert result.returncode == 0, result.stderr
    assert listing(out) == sorted(FILES)


def assert_failed_cleanly(result, out: Path, *expected: str) -> None:
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"error: fetch: {FIRST}: from ")
    for text in expected:
        assert text in message
    assert "Traceback" not in result.stderr
    assert listing(out) == []  # no partial or unverified file


def test_corrupt_gzip(tmp_path, mirror):
    source = bad_mirror(tmp_path, mirror, b"<html>not found</html>" * 100)
    result, out = fetch(tmp_path, str(source))
    assert_failed_cleanly(result, out, str(source), "expected a gzip file, found other bytes")


def test_wrong_checksum(tmp_path, mirror):
    source = bad_mirror(tmp_path, mirror, gzip.compress(b"\x00\x00\x08\x03" + bytes(1000)))
    result, out = fetch(tmp_path, str(source))
    assert_failed_cleanly(
        result, out, f"expected sha256 {FILES[FIRST]} of the decompressed bytes, found "
    )


def test_truncated_gzip(tmp_path, mirror):
    whole = (mirror / FIRST).read_bytes()
    source = bad_mirror(tmp_path, mirror, whole[: len(whole) // 2])
    result, out = fetch(tmp_path, str(source))
    assert_failed_cleanly(result, out, "expected a complete gzip file, found a truncated one")


def test_unreachable_mirror(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/mnist/"
    result, out = fetch(tmp_path, url)
    assert_failed_cleanly(result, out, url, "unreachable after 2 attempts", "refused")


def test_missing_file_on_a_mirror(tmp_path, http_mirror):
    result, out = fetch(tmp_path, http_mirror + "nowhere/")
    assert_failed_cleanly(result, out, "HTTP 404")
