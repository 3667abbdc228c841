"""The production endpoint, `python -m serving.production`: real nginx in front of real
`mlflow models serve` processes, on loopback ports.

It runs on a copy of the `work` fixture's store (the artifacts stay where they are), so
that the promotions here change nothing for the other modules: version 1 (the good
model) is champion at the start, version 2 (the middling one) is promoted to it.
"""

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import psutil
import pytest

from serving.contract import (
    EndpointError,
    png,
    post,
    read_model,
    request_body,
    wait_until_ready,
)

from helpers import MODEL_NAME, free_port, stage_env, store

CLIENT_TIMEOUT = 2  # seconds, --client-timeout: short, so that the tests need not wait


@dataclass
class Production:
    url: str
    process: subprocess.Popen
    home: Path  # nginx's config, the access log, the model servers' logs
    work: Path  # the store's folder

    def model_servers(self) -> list[psutil.Process]:
        """The `mlflow models serve` processes it runs now."""
        return [
            child
            for child in psutil.Process(self.process.pid).children(recursive=True)
            if "models" in child.cmdline() and "serve" in child.cmdline()
        ]

    def access_log(self) -> list[str]:
        return (self.home / "access.log").read_text().splitlines()


@pytest.fixture(scope="module")
def production(work, tmp_path_factory, test_digits):
    """`python -m serving.production` on a copy of the store, champion version 1."""
    copy = tmp_path_factory.mktemp("production")
    shutil.copy(work / "mlflow.db", copy / "mlflow.db")
    shutil.copy(work / "params.yaml", copy / "params.yaml")
    mlflow.MlflowClient(store(copy)).set_registered_model_alias(MODEL_NAME, "champion", "1")
    port, home, log = free_port(), copy / "home", copy / "production.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.production", "--port", str(port)]
            + ["--client-timeout", str(CLIENT_TIMEOUT), "--home", str(home)],
            cwd=copy,
            env=stage_env(MLFLOW_TRACKING_URI=store(copy)),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, timeout=300, running=lambda: process.poll() is None)
    except EndpointError as error:
        process.kill()
        pytest.fail(f"{error}:\n{log.read_text()}")
    yield Production(url, process, home, copy)

    started = psutil.Process(process.pid).children(recursive=True)  # nginx, model servers
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    _, left = psutil.wait_procs(started, timeout=10)
    for orphan in left:
        orphan.kill()
    assert not left, f"still running after the endpoint stopped: {[p.cmdline() for p in left]}"


@pytest.fixture(scope="module")
def test_digits(mirror):
    from pipeline.preprocess import IMAGES_MAGIC, read_idx

    return read_idx(mirror / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, (10_000, 28, 28))[:20]


def test_it_answers_as_the_champion_and_names_the_version(production, work, test_digits):
    mlflow.set_tracking_uri(store(work))
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    pictures = [png(digit) for digit in test_digits[:5]]
    status, answer, version = post(production.url, request_body(pictures))
    assert (status, version) == (200, "1")
    assert answer["predictions"] == read_model(champion, pictures)


def test_the_access_log_has_a_line_per_request(production, test_digits):
    body = request_body([png(test_digits[3])])
    assert post(production.url, body).status == 200
    # nginx writes the line once the answer is sent: it may come a moment after it.
    deadline = time.monotonic() + 10
    while not (lines := [x for x in production.access_log() if f"body={len(body)} " in x]):
        assert time.monotonic() < deadline, production.access_log()[-5:]
        time.sleep(0.1)
    [line] = lines
    assert " status=200 " in line and " version=1 " in line and '"POST /invocations' in line
    latency = float(line.split(" latency=")[1].split("s ")[0])
    assert 0 <= latency < 10


def requests_seen_by_the_model(production: Production) -> int:
    """POSTs that reached a model server, from the servers' own logs."""
    return sum(
        log.read_text().count("POST /invocations") for log in production.home.glob("model-*.log")
    )


def test_an_oversized_body_gets_413_before_the_model_reads_it(production):
    seen = requests_seen_by_the_model(production)
    memory = sum(p.memory_info().rss for p in production.model_servers())
    size = 50_000_000
    with socket.create_connection(("127.0.0.1", int(production.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )
        try:  # nginx answers at once; sending the rest then fails, or is discarded
            sock.sendall(b"0" * size)
        except OSError:
            pass
        reply = sock.recv(65536).decode()
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert "larger than the limit of 16000000 bytes" in reply
    assert requests_seen_by_the_model(production) == seen
    assert sum(p.memory_info().rss for p in production.model_servers()) < memory * 1.02


def test_stalled_clients_are_cut_off_without_delaying_anyone(production, test_digits):
    host, port = "127.0.0.1", int(production.url.rsplit(":", 1)[1])
    silent = socket.create_connection((host, port))  # sends nothing at all
    slow = socket.create_connection((host, port))  # announces a body, sends 10 bytes of it
    slow.sendall(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"{" * 10
    )
    reply = post(production.url, request_body([png(test_digits[0])]), timeout=CLIENT_TIMEOUT)
    assert reply.status == 200
    for stalled in (silent, slow):  # answered while both stalled clients were still connected
        stalled.setblocking(False)
        with pytest.raises(BlockingIOError):
            stalled.recv(1)
    for stalled in (silent, slow):
        stalled.settimeout(CLIENT_TIMEOUT + 5)
        left = stalled.recv(1024)  # b"" once nginx closed it, or its 408 answer
        assert left == b"" or left.startswith(b"HTTP/1.1 408"), left
        stalled.close()


def test_a_promotion_reaches_it_with_no_failed_request(production, test_digits):
    """A client sending without pause sees version 1, then 2 after `pipeline.promote 2`,
    then 1 again after the alias is moved as the MLflow UI does; never a failed request.

    While nginx reloads, its old worker and its new one both take connections for a
    moment, so answers of both versions can alternate; SETTLE seconds later, only the
    new version answers."""
    replies = []  # (time, status, version)
    stop = threading.Event()
    body = request_body([png(test_digits[0])])

    def send_without_pause():
        while not stop.is_set():
            try:
                reply = post(production.url, body, timeout=30)
                replies.append((time.monotonic(), reply.status, reply.version))
            except EndpointError as error:
                replies.append((time.monotonic(), str(error), None))

    def first_answer(version: str, since: float) -> float:
        """When the first answer of that version came, after `since`."""
        deadline = time.monotonic() + 180  # did it switch at all; bench/load.py times it
        while time.monotonic() < deadline:
            seen = [t for t, _, v in list(replies) if t > since and v == version]
            if seen:
                return seen[0]
            time.sleep(0.2)
        pytest.fail(f"version {version} not served within 180 s")

    def versions_between(start: float, end: float) -> set[str]:
        return {v for t, _, v in list(replies) if start < t < end}

    client = threading.Thread(target=send_without_pause)
    client.start()
    try:
        first_answer("1", since=0)
        promoted = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pipeline.promote", "2", "--force"],
            cwd=production.work,
            env=stage_env(MLFLOW_TRACKING_URI=store(production.work)),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        to_2 = first_answer("2", promoted)
        time.sleep(SETTLE + 1)
        moved = time.monotonic()
        client_api = mlflow.MlflowClient(store(production.work))
        client_api.set_registered_model_alias(MODEL_NAME, "champion", "1")  # as the UI does
        to_1 = first_answer("1", moved)
        time.sleep(SETTLE + 1)
    finally:
        stop.set()
        client.join()
    failed = [r for r in replies if r[1] != 200]
    assert not failed, failed[:5]
    assert versions_between(0, promoted) == {"1"}
    assert versions_between(to_2 + SETTLE, moved) == {"2"}
    assert versions_between(to_1 + SETTLE, time.monotonic()) == {"1"}
    print(
        f"first answers of the new version {to_2 - promoted:.1f} s and {to_1 - moved:.1f} s "
        f"after the alias moved; {len(replies)} requests"
    )
    # The old version's server is stopped once nginx no longer sends it anything.
    assert len(production.model_servers()) == 1


SETTLE = 2  # seconds
