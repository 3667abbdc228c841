"""The production endpoint: nginx in front of `mlflow models serve`, following an alias.

    python -m serving.production                      # the champion on 127.0.0.1:8000
    python -m serving.production --host 0.0.0.0 --port 80 --workers 2

nginx (Debian's `nginx-light`) takes the connections and enforces the limits before a
request reaches the model: a body over --max-body gets 413 unread, a client that sends
nothing, or too slowly, for --client-timeout seconds is cut off, and a request is passed
on only once nginx holds all of it, so slow clients never hold a model worker.

Behind nginx, --workers processes of `mlflow models serve` serve the version that the
alias names, each on a loopback port. Every --poll seconds the alias is looked up in
the registry. When it has moved (`python -m pipeline.promote N`, or the MLflow UI), the
new version is started beside the old one on other ports, sent a warm-up picture, and
nginx is pointed at it and reloaded: requests in flight finish on the old version, new ones go to
the new one, and the old server is stopped once nginx's old workers are done (blue/green).
A version that does not start or answer is logged, and the old one keeps serving.

Every answer carries the header X-Model-Version. <home>/access.log has one line per
request: time, status, latency, model version, body bytes. SIGTERM or Ctrl+C stops
nginx and the model servers.
"""

import argparse
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

NGINX_CONFIG = """\
# Written by python -m serving.production, and again at each switch of model version.
daemon off;
worker_processes 1;
worker_shutdown_timeout 150s;
pid {home}/nginx.pid;
error_log {home}/error.log warn;
{user}
events {{
    worker_connections 1024;
}}

http {{
    log_format requests '$time_iso8601 status=$status latency=${{request_time}}s '
                        'version=$sent_http_x_model_version body=$content_length '
                        '"$request" $remote_addr';
    access_log {home}/access.log requests;
    client_body_temp_path {home}/tmp/body;
    proxy_temp_path {home}/tmp/proxy;
    fastcgi_temp_path {home}/tmp/fastcgi;
    uwsgi_temp_path {home}/tmp/uwsgi;
    scgi_temp_path {home}/tmp/scgi;

    # The limits, applied before the model server sees a byte of the request.
    client_max_body_size {max_body};
    client_body_buffer_size 1m;
    client_header_timeout {timeout}s;
    client_body_timeout {timeout}s;
    send_timeout {timeout}s;
    keepalive_timeout 30s;

    upstream model {{
        least_conn;
{servers}
        keepalive 16;
    }}

    server {{
        listen {host}:{port};
        error_page 413 @too_large;
        error_page 502 503 504 @unavailable;

        location / {{
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 120s;
            add_header X-Model-Version {version} always;
        }}
        location @too_large {{
            default_type application/json;
            return 413 '{too_large}';
        }}
        location @unavailable {{
            default_type application/json;
            return 503 '{unavailable}';
        }}
    }}
}}
"""


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)


@dataclass
class Version:
    """One model version served by `workers` single-worker `mlflow models serve`
    processes on loopback ports, each in its own process group."""

    version: str
    ports: list[int]
    processes: list[subprocess.Popen]

    def running(self) -> bool:
        return all(process.poll() is None for process in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def start_version(name: str, version: str, workers: int, home: Path) -> Version:
    """Serve a version; return once every process has read a warm-up picture.

    One process per worker, not `--workers N`: uvicorn's own workers leave Nagle's
    algorithm on, which adds 40 ms to each keep-alive request (uvicorn issue 3149).
    Raises EndpointError, having stopped them, when one does not start or answer."""
    from serving import server
    from serving.contract import read_endpoint, wait_until_ready
    from serving.package import EXAMPLE

    served = Version(version, [], [])
    with open(home / f"model-{version}.log", "ab") as output:
        for _ in range(workers):
            served.ports.append(server.free_port())
            served.processes.append(
                server.start(
                    f"models:/{name}/{version}",
                    "127.0.0.1",
                    served.ports[-1],
                    workers=1,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        for port, process in zip(served.ports, served.processes, strict=True):
            url = f"http://127.0.0.1:{port}"
            wait_until_ready(url, timeout=300, running=lambda p=process: p.poll() is None)
            read_endpoint(url, [EXAMPLE.read_bytes()])  # traces the network, proves it reads
    except BaseException:  # it did not answer, or we are being stopped
        served.stop()
        raise
    return served


class Nginx:
    """nginx in the foreground, as a child of ours, with its config in `home`."""

    def __init__(self, home: Path, settings: dict):
        self.home = home
        self.settings = settings
        self.config = home / "nginx.conf"
        self.process: subprocess.Popen | None = None

    def command(self, *extra: str) -> list[str]:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        return [
            binary,
            "-p",
            str(self.home),
            "-c",
            str(self.config),
            "-e",
            str(self.home / "error.log"),
            *extra,
        ]

    def write_config(self, served: Version) -> None:
        text = NGINX_CONFIG.format(
            home=self.home,
            user=worker_user(self.home),
            servers="\n".join(f"        server 127.0.0.1:{port};" for port in served.ports),
            version=served.version,
            too_large=json.dumps(
                {
                    "error_code": "REQUEST_TOO_LARGE",
                    "message": "the request body is larger than the limit of "
                    f"{self.settings['max_body']} bytes",
                }
            ),
            unavailable=json.dumps(
                {"error_code": "UNAVAILABLE", "message": "the model server is not answering"}
            ),
            **self.settings,
        )
        self.config.write_text(text)
        check = subprocess.run(self.command("-t", "-q"), capture_output=True, text=True)
        if check.returncode != 0:
            raise SystemExit(f"error: nginx refused {self.config}: {check.stderr.strip()}")

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), start_new_session=True)

    def reload(self) -> None:
        """Load the config written last; return once the old workers have finished."""
        import psutil

        old_workers = psutil.Process(self.process.pid).children()
        self.process.send_signal(signal.SIGHUP)
        psutil.wait_procs(old_workers, timeout=160)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # finish the requests in flight
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def worker_user(home: Path) -> str:
    """nginx's `user` line: as root, its workers run as the owner of home (they write
    request bodies there); otherwise they run as the user who started it."""
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(home.stat().st_uid).pw_name};"


def alias_version(name: str, alias: str) -> str:
    import mlflow

    return mlflow.MlflowClient().get_model_version_by_alias(name, alias).version


class BlueGreen:
    """The alias's current version behind nginx, switched to the next one without a
    failed request. Owns the processes it starts; `stop` stops them all."""

    def __init__(self, name: str, alias: str, args: argparse.Namespace):
        self.name, self.alias, self.args = name, alias, args
        settings = {"host": args.host, "port": args.port, "max_body": args.max_body}
        self.nginx = Nginx(args.home, {**settings, "timeout": args.client_timeout})
        self.current: Version | None = None
        self.next: Version | None = None  # while it replaces the current one
        self.failed: set[str] = set()  # versions that did not start, until the alias moves

    def start(self, version: str) -> None:
        self.current = start_version(self.name, version, self.args.workers, self.args.home)
        self.nginx.write_config(self.current)
        self.nginx.start()

    def switch(self, version: str) -> None:
        """Start the version beside the current one, point nginx at it, stop the old one."""
        from serving.contract import EndpointError

        log(
            f"{self.name}@{self.alias} is version {version}: starting it beside version "
            f"{self.current.version}"
        )
        started = time.monotonic()
        try:
            self.next = start_version(self.name, version, self.args.workers, self.args.home)
        except EndpointError as error:
            self.failed.add(version)
            log(
                f"version {version} did not start ({error}); see {self.args.home}/model-"
                f"{version}.log; still serving version {self.current.version}"
            )
            return
        self.nginx.write_config(self.next)
        self.nginx.reload()
        old, self.current, self.next = self.current, self.next, None
        old.stop()
        log(
            f"now serving version {version}, {time.monotonic() - started:.0f} s after the "
            "alias was seen to move"
        )

    def follow(self) -> None:
        """Serve whatever version the alias names, until stopped."""
        from mlflow.exceptions import MlflowException

        while True:
            time.sleep(self.args.poll)
            if self.nginx.process.poll() is not None:
                raise SystemExit(f"error: nginx stopped; see {self.args.home}/error.log")
            try:
                version = alias_version(self.name, self.alias)
            except (MlflowException, OSError) as error:
                log(
                    f"cannot look up {self.name}@{self.alias} ({error}); still serving "
                    f"version {self.current.version}"
                )
                continue
            if version != self.current.version:
                if version not in self.failed:
                    self.switch(version)
            else:
                self.failed.clear()
                if not self.current.running():  # it died: start it again
                    self.switch(version)

    def stop(self) -> None:
        self.nginx.stop()
        for served in (self.current, self.next):
            if served:
                served.stop()


def main() -> None:
    from serving.contract import MAX_REQUEST_BYTES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alias", default="champion", help="the alias to serve (champion)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="model server processes (1)")
    parser.add_argument("--poll", type=float, default=5, help="seconds between alias look-ups (5)")
    parser.add_argument(
        "--max-body",
        type=int,
        default=MAX_REQUEST_BYTES,
        help=f"bytes per request ({MAX_REQUEST_BYTES})",
    )
    parser.add_argument(
        "--client-timeout", type=int, default=10, help="seconds a client may stay silent (10)"
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=Path("production"),
        help="nginx's config, logs and buffers (./production)",
    )
    args = parser.parse_args()
    if args.workers < 1:
        parser.error(f"--workers must be 1 or more, not {args.workers}")
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        raise SystemExit("error: nginx is not installed: apt install nginx-light")

    from pipeline import tracking
    from pipeline.promote import model_name
    from serving.contract import EndpointError, wait_until_ready

    tracking.use_store()
    name = model_name()
    try:
        tracking.check_model(f"models:/{name}@{args.alias}")  # says what fixes it
    except LookupError as error:
        raise SystemExit(f"error: {error}") from None
    version = alias_version(name, args.alias)
    args.home = args.home.resolve()
    (args.home / "tmp").mkdir(parents=True, exist_ok=True)
    endpoint = BlueGreen(name, args.alias, args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    url = f"http://{args.host}:{args.port}"
    try:
        endpoint.start(version)
        wait_until_ready(url, timeout=30, running=lambda: endpoint.nginx.process.poll() is None)
        log(
            f"serving {name}@{args.alias} (version {version}) at {url}/invocations; "
            f"access log {args.home}/access.log"
        )
        endpoint.follow()
    except EndpointError as error:
        raise SystemExit(f"error: {error}") from None
    except KeyboardInterrupt:
        pass
    finally:
        endpoint.stop()


if __name__ == "__main__":
    from pipeline.tracking import errors_in_one_line

    with errors_in_one_line():
        main()
