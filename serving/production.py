"""The production endpoint: nginx in front of MLflow's model servers, following an alias.

    python -m serving.production                      # the champion on 127.0.0.1:8000
    python -m serving.production --host 0.0.0.0 --port 80 --workers 2

nginx (Debian's `nginx-light`) takes the connections and enforces the limits before a
request reaches the model: a body over --max-body gets 413 unread, a client that sends
nothing, or too slowly, for --client-timeout seconds is cut off, and a request is passed
on only once nginx holds all of it, so slow clients never hold a model worker.

Behind nginx, --workers model servers (MLflow's scoring app under uvicorn,
serving/model_app.py) serve the version that the alias names, each on a loopback
port. Every --poll seconds the alias is looked up in the registry. When it has moved
(`python -m pipeline.promote N`, or the MLflow UI), the new version is started beside
the old one on other ports, sent a warm-up picture, and nginx is pointed at it and
reloaded: requests in flight finish on the old version, new ones go to the new one,
and the old server is stopped once nginx's old workers are done (blue/green). A version
that does not start or answer is logged, and the old one keeps serving.

A model server that dies (a crash, an out-of-memory kill) is started again alone, on
its own port, while the others keep serving; nginx retries the requests it held on
another server (reading a picture changes nothing, so a retry is safe). nginx itself is
started again if it stops.

Every answer carries the header X-Model-Version. <home>/access.log has one line per
request: time, status, latency, model version, body bytes; <home>/answers.jsonl one per
picture answered (serving/answers.py), and GET /metrics on the endpoint's port shows the
counts of all its servers to Prometheus (serving/metrics.py, docs/monitoring.md). With
--review-folder, each picture of an unsure answer is kept there for a person to label
(`python -m gui --review`, core/review.py). SIGTERM or Ctrl+C stops nginx and every
model server, whatever the endpoint was doing, and exits 143 or 130.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core import nginx
from core.nginx import Nginx
from core.paths import ROOT
from core.processes import stop_group
from core.review import REVIEW_MAX
from digit_reader.contract import UNSURE_BELOW

MAX_REQUEST_BYTES = 16_000_000  # per request body: what nginx lets through (--max-body)
ANSWERS_LOG_BYTES = 50_000_000  # the answer log is rotated past this (one old one is kept)
METRICS_LOCATION = """
        location = /metrics {{
            proxy_pass http://127.0.0.1:{port};
        }}"""
NGINX_CONFIG = """\
# Written by python -m serving.production, and again at each switch of model version.
{main}
worker_shutdown_timeout 150s;

http {{
    log_format requests '$time_iso8601 status=$status latency=${{request_time}}s '
                        'version=$sent_http_x_model_version body=$content_length '
                        '"$request" $remote_addr';
    access_log {home}/access.log requests;
{temp_paths}

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
{metrics}

        location / {{
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 120s;
            # A server that died or stopped answering: the request goes to another one.
            # Reading a picture changes nothing, so a POST may be sent twice.
            proxy_next_upstream error timeout non_idempotent;
            proxy_next_upstream_tries {tries};
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

WATCH_INTERVAL = 1  # seconds between looks at the processes (the alias: --poll)
RETRY_DELAY = 30  # seconds before a server that did not start again is tried again


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}", flush=True)


@dataclass
class ModelServer:
    """One model server (serving/model_app.py under uvicorn, one worker) on a loopback
    port, in a process group of its own; `env` says what it serves (model_app's names)."""

    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen | None = None
    retry_at: float = 0  # after a start that failed: when to try again (time.monotonic)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from core.store import tracking_uri

        command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "serving.model_app:app"]
        env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri(), **self.env)
        with open(self.log_path, "ab") as output:
            self.process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self) -> None:
        """Return once it has read a warm-up picture (which also warms up the network's
        runtime, so that no user's request is the slow first one); EndpointError if it
        does not."""
        from core.packaging import EXAMPLE
        from serving.client import read_endpoint, wait_until_ready

        wait_until_ready(self.url, timeout=300, running=self.alive)
        read_endpoint(self.url, [EXAMPLE.read_bytes()])

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def how_it_ended(self) -> str:
        code = self.process.returncode
        if code < 0:
            return f"died with {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def stop(self) -> None:
        """Stop it and whatever is left of its group, in any state; safe to repeat."""
        if self.process is None:
            return
        stop_group(self.process)


@dataclass
class Version:
    """One model version served by `workers` model servers."""

    version: str
    servers: list[ModelServer] = field(default_factory=list)

    def stop(self) -> None:
        for served in self.servers:
            served.stop()


class EndpointNginx(Nginx):
    """The endpoint's nginx: its config names the servers of one version."""

    def __init__(self, home: Path, settings: dict, metrics_port: int | None):
        super().__init__(home)
        self.endpoint = settings  # host, port, max_body, timeout
        self.metrics_port = metrics_port  # where GET /metrics goes; None: nowhere

    def write_config(self, served: Version) -> None:
        ports = [s.port for s in served.servers]
        self.write(
            NGINX_CONFIG.format(
                **self.settings(),
                servers="\n".join(f"        server 127.0.0.1:{port};" for port in ports),
                tries=min(len(ports), 3),
                metrics=METRICS_LOCATION.format(port=self.metrics_port)
                if self.metrics_port
                else "",
                version=served.version,
                too_large=json.dumps(
                    {
                        "error_code": "REQUEST_TOO_LARGE",
                        "message": "the request body is larger than the limit of "
                        f"{self.endpoint['max_body']} bytes",
                    }
                ),
                unavailable=json.dumps(
                    {"error_code": "UNAVAILABLE", "message": "the model server is not answering"}
                ),
                **self.endpoint,
            )
        )


def meanwhile(living: int) -> str:
    """What serves while dead servers start again, for the log."""
    if living == 0:
        return "nothing else serves until it is back (503 meanwhile)"
    if living == 1:
        return "the other keeps serving"
    return f"the other {living} keep serving"


def alias_version(name: str, alias: str) -> str:
    import mlflow

    return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)


def model_version_tags(name: str, version: str) -> dict[str, str]:
    import mlflow

    return mlflow.MlflowClient().get_model_version(name, version).tags


class BlueGreen:
    """The alias's current version behind nginx, switched to the next one without a
    failed request, its dead servers started again. Owns every process it starts, from
    the moment it starts it: `stop` stops them all, whatever state it is in."""

    def __init__(self, name: str, alias: str, args: argparse.Namespace):
        from serving import server

        self.name, self.alias, self.args = name, alias, args
        self.metrics = None
        if args.metrics:
            from serving.metrics import EndpointMetrics

            self.metrics = EndpointMetrics(args.home)
        metrics_port = server.free_port() if self.metrics else None
        settings = {"host": args.host, "port": args.port, "max_body": args.max_body}
        self.nginx = EndpointNginx(
            args.home, {**settings, "timeout": args.client_timeout}, metrics_port
        )
        self.current: Version | None = None
        self.versions: list[Version] = []  # every version with processes of ours
        self.failed: set[str] = set()  # versions that did not start, until the alias moves

    def start_version(self, version: str) -> Version:
        """Serve a version; return once every server has read a warm-up picture.

        One process per worker, not `--workers N`: uvicorn's own workers leave Nagle's
        algorithm on, which adds 40 ms to each keep-alive request (uvicorn issue 3149).
        Raises EndpointError, having stopped them, when one does not start or answer."""
        from serving import server

        served = Version(version)
        self.versions.append(served)
        for _ in range(self.args.workers):
            served.servers.append(
                ModelServer(
                    self.server_env(version),
                    server.free_port(),
                    self.args.home / f"model-{version}.log",
                )
            )
            served.servers[-1].start()
        try:
            for model_server in served.servers:
                model_server.wait_ready()
        except BaseException:  # it did not answer, or we are being stopped
            self.retire(served)
            raise
        return served

    def server_env(self, version: str) -> dict[str, str]:
        """What a model server of this version is told (serving/model_app.py)."""
        env = {"DIGITS_MODEL_URI": f"models:/{self.name}/{version}"}
        if self.metrics:
            env |= {
                "DIGITS_MODEL_VERSION": version,
                "DIGITS_HOME": str(self.args.home),
                "DIGITS_UNSURE_BELOW": str(self.args.unsure_below),
                "PROMETHEUS_MULTIPROC_DIR": str(self.metrics.folder),
            }
        if self.args.review_folder:
            env |= {
                "DIGITS_REVIEW_FOLDER": str(self.args.review_folder),
                "DIGITS_REVIEW_MAX": str(self.args.review_max),
            }
        return env

    def now_serving(self, version: str) -> None:
        if self.metrics:
            tags = model_version_tags(self.name, version)
            self.metrics.now_serving(version, tags.get("unsure_share"))

    def retire(self, served: Version) -> None:
        served.stop()
        self.versions.remove(served)

    def start(self, version: str) -> None:
        if self.metrics:
            self.metrics.serve(self.nginx.metrics_port)
            self.metrics.alias.set(int(version))
        self.current = self.start_version(version)
        self.nginx.write_config(self.current)
        self.nginx.start()
        self.now_serving(version)

    def switch(self, version: str) -> None:
        """Start the version beside the current one, point nginx at it, stop the old one."""
        from serving.client import EndpointError

        log(
            f"{self.name}@{self.alias} is version {version}: starting it beside version "
            f"{self.current.version}"
        )
        started = time.monotonic()
        try:
            new = self.start_version(version)
        except EndpointError as error:
            self.failed.add(version)
            log(
                f"version {version} did not start ({error}); see {self.args.home}/model-"
                f"{version}.log; still serving version {self.current.version}"
            )
            return
        self.nginx.write_config(new)
        self.nginx.reload()
        old, self.current = self.current, new
        self.now_serving(version)
        self.retire(old)
        log(
            f"now serving version {version}, {time.monotonic() - started:.0f} s after the "
            "alias was seen to move"
        )

    def restart_dead_servers(self) -> None:
        """Start each dead server of the current version again, alone, on its port:
        nginx's config stays as it is, and the others keep serving meanwhile."""
        from serving.client import EndpointError

        servers = self.current.servers
        dead = [s for s in servers if not s.alive() and s.retry_at <= time.monotonic()]
        if not dead:
            return
        others = meanwhile(living=sum(s.alive() for s in servers))
        started = time.monotonic()
        for served in dead:
            what = f"model server on port {served.port} (version {self.current.version})"
            if served.retry_at:
                log(f"{what}: starting it again; {others}")
            else:
                log(f"{what} {served.how_it_ended()}; restarting it; {others}")
            served.stop()  # what is left of it: the port must be free
            served.start()
        for served in dead:
            try:
                served.wait_ready()
            except EndpointError as error:
                served.stop()
                served.retry_at = time.monotonic() + RETRY_DELAY
                log(
                    f"model server on port {served.port} did not start again ({error}); see "
                    f"{served.log_path}; trying again in {RETRY_DELAY} s"
                )
                continue
            served.retry_at = 0
            seconds = time.monotonic() - started
            log(f"model server on port {served.port} is back after {seconds:.0f} s")

    def keep_nginx_running(self) -> None:
        if not self.nginx.alive():
            log(
                f"nginx stopped (exit code {self.nginx.process.returncode}); starting it "
                f"again; see {self.args.home}/error.log"
            )
            self.nginx.stop()  # its workers, if they outlived it
            self.nginx.start()

    def follow_alias(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            version = alias_version(self.name, self.alias)
        except (MlflowException, OSError) as error:
            log(
                f"cannot look up {self.name}@{self.alias} ({error}); still serving "
                f"version {self.current.version}"
            )
            return
        if self.metrics:
            self.metrics.alias.set(int(version))
        if version == self.current.version:
            self.failed.clear()
        elif version not in self.failed:
            self.switch(version)

    def follow(self) -> None:
        """Serve whatever version the alias names, with every process running, until
        stopped."""
        next_look_up = time.monotonic() + self.args.poll
        while True:
            time.sleep(WATCH_INTERVAL)
            self.keep_nginx_running()
            if self.metrics:
                from serving import answers

                answers.rotate(self.args.home, ANSWERS_LOG_BYTES)
            self.restart_dead_servers()
            if time.monotonic() >= next_look_up:
                self.follow_alias()
                next_look_up = time.monotonic() + self.args.poll

    def stop(self) -> None:
        self.nginx.stop()
        for served in list(self.versions):
            self.retire(served)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alias", default="champion", help="the alias to serve (champion)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="model server processes (1)")
    # One look-up costs the registry one small request; a promotion waits half of it.
    parser.add_argument("--poll", type=float, default=2, help="seconds between alias look-ups (2)")
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
        "--unsure-below",
        type=float,
        default=UNSURE_BELOW,
        help=f"a digit read with less confidence is unsure, in /metrics ({UNSURE_BELOW})",
    )
    parser.add_argument(
        "--no-metrics",
        dest="metrics",
        action="store_false",
        help="no /metrics and no answer log (what bench/load.py compares with)",
    )
    parser.add_argument(
        "--review-folder",
        type=Path,
        help="keep the pictures of unsure answers here, for `python -m gui --review` (off)",
    )
    parser.add_argument(
        "--review-max",
        type=int,
        default=REVIEW_MAX,
        help=f"pictures the review folder holds, the oldest dropped first ({REVIEW_MAX})",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=ROOT / "production",
        help="nginx's config, logs and buffers (production/ of the clone)",
    )
    args = parser.parse_args()
    if args.workers < 1:
        parser.error(f"--workers must be 1 or more, not {args.workers}")
    if not 0 < args.unsure_below <= 1:
        parser.error(f"--unsure-below must be above 0 and at most 1, not {args.unsure_below}")
    if args.review_folder and not args.metrics:
        parser.error("--review-folder needs the answers watched: leave out --no-metrics")
    if args.review_max < 1:
        parser.error(f"--review-max must be 1 or more, not {args.review_max}")
    if args.review_folder:
        args.review_folder = args.review_folder.resolve()
    nginx.binary()  # says how to install it

    from core.registry import check_model, model_name
    from core.store import use_store
    from serving.client import wait_until_ready

    use_store()
    name = model_name()
    check_model(f"models:/{name}@{args.alias}")  # says what fixes it
    version = alias_version(name, args.alias)
    args.home = args.home.resolve()
    args.home.mkdir(parents=True, exist_ok=True)
    endpoint = BlueGreen(name, args.alias, args)
    url = f"http://{args.host}:{args.port}"
    try:
        endpoint.start(version)
        wait_until_ready(url, timeout=30, running=endpoint.nginx.alive)
        log(
            f"serving {name}@{args.alias} (version {version}) at {url}/invocations; "
            f"access log {args.home}/access.log"
        )
        endpoint.follow()
    finally:
        # A second Ctrl+C or SIGTERM must not cut this short and leave servers running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        endpoint.stop()


if __name__ == "__main__":
    from core.errors import command

    command(main, left_whole="nginx and every model server of the endpoint are stopped")
