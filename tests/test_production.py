"""The production endpoint, `python -m serving.production`: real nginx in front of real
model servers (MLflow's scoring app under uvicorn), on loopback ports.

It runs on a copy of the `work` fixture's store (the artifacts stay where they are), so
that the promotions here change nothing for the other modules: version 1 (the good
model) is champion at the start, version 2 (the middling one) is promoted to it.
"""

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import psutil
import pytest

from digit_reader.contract import png, read_model
from serving.client import EndpointError, post, request_body

from helpers import MODEL_NAME, free_port, stage_env, store

pytestmark = pytest.mark.slow  # trains models or starts services: `make test` only

CLIENT_TIMEOUT = 2  # seconds, --client-timeout: short, so that the tests need not wait


@dataclass
class Production:
    url: str
    process: subprocess.Popen
    home: Path  # nginx's config, the access log, the model servers' logs
    work: Path  # the store's folder
    output: Path  # what the endpoint printed

    def model_servers(self) -> list[psutil.Process]:
        """The model server processes it runs now (serving/model_app.py under uvicorn)."""
        return [
            child
            for child in psutil.Process(self.process.pid).children(recursive=True)
            if "serving.model_app:app" in child.cmdline()
        ]

    def access_log(self) -> list[str]:
        return (self.home / "access.log").read_text().splitlines()

    def printed(self) -> str:
        return self.output.read_text()


def store_copy(work: Path, folder: Path) -> Path:
    """A copy of the work fixture's store in folder, champion version 1."""
    shutil.copy(work / "mlflow.db", folder / "mlflow.db")
    shutil.copy(work / "params.yaml", folder / "params.yaml")
    mlflow.MlflowClient(store(folder)).set_registered_model_alias(MODEL_NAME, "champion", "1")
    return folder


def start_production(copy: Path, *args: str) -> Production:
    """`python -m serving.production` on the store in copy, not yet waited for."""
    port, output = free_port(), copy / "production.log"
    with open(output, "w") as printed:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving.production", "--port", str(port)]
            + ["--client-timeout", str(CLIENT_TIMEOUT), "--home", str(copy / "home"), *args],
            cwd=copy,
            env=stage_env(MLFLOW_TRACKING_URI=store(copy)),
            stdout=printed,
            stderr=subprocess.STDOUT,
            # Ctrl+C must reach it, however pytest was started (a shell's `&` ignores it).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    return Production(f"http://127.0.0.1:{port}", process, copy / "home", copy, output)


def wait_for_endpoint(production: Production) -> None:
    """Until it says it serves (nginx may answer a moment before)."""
    deadline = time.monotonic() + 300
    while f"serving {MODEL_NAME}@champion" not in production.printed():
        if production.process.poll() is not None or time.monotonic() > deadline:
            production.process.kill()
            pytest.fail(f"the endpoint did not start:\n{production.printed()}")
        time.sleep(0.2)


def stop_production(production: Production, number: int = signal.SIGTERM) -> str:
    """Signal the endpoint, wait for it; fail if anything it started is left running.
    Returns the last line it printed."""
    started = psutil.Process(production.process.pid).children(recursive=True)
    ports = [production.url.rsplit(":", 1)[1]]
    ports += [p.cmdline()[p.cmdline().index("--port") + 1] for p in production.model_servers()]
    production.process.send_signal(number)
    production.process.wait(timeout=90)
    _, left = psutil.wait_procs(started, timeout=10)
    for orphan in left:
        orphan.kill()
    assert not left, f"still running after the endpoint stopped: {[p.cmdline() for p in left]}"
    for port in ports:  # nothing it started still answers, even a server started meanwhile
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", int(port)), timeout=5).close()
    return production.printed().strip().splitlines()[-1]


@pytest.fixture(scope="module")
def production(work, tmp_path_factory, test_digits):
    """`python -m serving.production --workers 2` on a copy of the store, champion
    version 1."""
    endpoint = start_production(
        store_copy(work, tmp_path_factory.mktemp("production")), "--workers", "2"
    )
    wait_for_endpoint(endpoint)
    yield endpoint
    assert stop_production(endpoint).startswith("stopped by SIGTERM")


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
    body = request_body([png(test_digits[0])])

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

    with clients_without_pause(production.url, body, count=1) as replies:
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
    assert len(production.model_servers()) == 2  # --workers 2


SETTLE = 2  # seconds


@contextlib.contextmanager
def clients_without_pause(url: str, body: bytes, count: int) -> Iterator[list[tuple]]:
    """`count` clients posting body to url without pause until the block ends; yields
    the list of their replies as (time, status or error, version), growing."""
    replies = []
    stop = threading.Event()

    def send_without_pause():
        while not stop.is_set():
            try:
                reply = post(url, body, timeout=30)
                replies.append((time.monotonic(), reply.status, reply.version))
            except EndpointError as error:
                replies.append((time.monotonic(), str(error), None))

    clients = [threading.Thread(target=send_without_pause) for _ in range(count)]
    for client in clients:
        client.start()
    try:
        yield replies
    finally:
        stop.set()
        for client in clients:
            client.join()


def server_port(server: psutil.Process) -> int:
    return int(server.cmdline()[server.cmdline().index("--port") + 1])


def kill_tree(server: psutil.Process) -> None:
    """SIGKILL to a model server and its children, as the out-of-memory killer would."""
    for process in [server, *server.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def wait_until(condition, timeout: float, what: str) -> float:
    """Seconds until condition() was true; a failed test after timeout."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"not within {timeout} s: {what}"
        time.sleep(0.2)
    return time.monotonic() - started


def test_a_dead_model_server_is_restarted_alone_with_no_failed_request(production, test_digits):
    """Eight clients without pause; one of the two model servers is killed (its whole
    tree, SIGKILL): no request fails, nginx retries on the other server, and the dead
    one is started again on its port while the other keeps serving."""
    body = request_body([png(test_digits[0])])
    victim, survivor = production.model_servers()
    nginx = [p for p in psutil.Process(production.process.pid).children() if p.name() == "nginx"]
    port = server_port(victim)
    printed_before = len(production.printed())
    with clients_without_pause(production.url, body, count=8) as replies:
        wait_until(lambda: len(replies) > 50, 60, "answers before the kill")
        kill_tree(victim)
        killed = time.monotonic()
        back = wait_until(
            lambda: f"model server on port {port} is back" in production.printed(), 90, "back"
        )
        answered = len(replies)
        wait_until(lambda: len(replies) > answered + 50, 60, "answers after the restart")
    failed = [r for r in replies if r[1] != 200]
    assert not failed, failed[:5]
    assert {v for t, _, v in replies if t > killed} == {"1"}
    printed = production.printed()[printed_before:]
    assert (
        f"model server on port {port} (version 1) died with SIGKILL; restarting it; "
        "the other keeps serving" in printed
    )
    servers = production.model_servers()
    assert survivor in servers and victim not in servers and len(servers) == 2
    assert server_port(next(s for s in servers if s != survivor)) == port  # its own port
    assert all(p.is_running() for p in nginx)  # nginx was not restarted
    assert "starting it beside" not in printed  # no whole-version switch
    assert back < 60, f"back {back:.0f} s after the kill"
    print(f"{len(replies)} requests, the server back {back:.1f} s after the kill")


def test_sigterm_while_a_dead_server_restarts_stops_everything(work, tmp_path):
    endpoint = start_production(store_copy(work, tmp_path), "--workers", "1")
    wait_for_endpoint(endpoint)
    [server] = endpoint.model_servers()
    kill_tree(server)
    wait_until(lambda: "restarting it" in endpoint.printed(), 30, "restarting")
    wait_until(lambda: endpoint.model_servers(), 30, "a new model server")
    last_line = stop_production(endpoint, signal.SIGTERM)
    assert endpoint.process.returncode == 143
    assert last_line == (
        "stopped by SIGTERM: nginx and every model server of the endpoint are stopped"
    )
    assert "Traceback" not in endpoint.printed()


def test_ctrl_c_while_it_starts_stops_everything(work, tmp_path):
    endpoint = start_production(store_copy(work, tmp_path), "--workers", "2")
    wait_until(lambda: len(endpoint.model_servers()) == 2, 60, "model servers starting")
    last_line = stop_production(endpoint, signal.SIGINT)
    assert endpoint.process.returncode == 130
    assert last_line.startswith("stopped by Ctrl+C")
    assert "Traceback" not in endpoint.printed()
