"""A throwaway team on loopback, for the tests and bench/tracking.py; each part stops
what it started:

- `cluster()`: a throwaway PostgreSQL cluster (Debian's server binaries, a folder of its
  own, a free port). `initdb` refuses to run as root (and CI runs as root): as root, the
  cluster belongs to the `postgres` system user and its commands run as that user.
- `tracking_server(database, home)`: `python -m team.server` on it, with its login.

Both can be restarted, and the server frozen, as the fault tests need (tests/test_team_faults.py).
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError
from core.paths import ROOT
from serving.server import free_port

# Debian keeps each major version's server programs apart; take the newest.
INSTALLED = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
SUPERUSER = "team"


def as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass(frozen=True)
class Cluster:
    uri: str  # its superuser, without a database name: postgresql://team@127.0.0.1:PORT
    pg_ctl: list[str]  # pg_ctl with its data folder and log, run as the cluster's owner
    options: str  # the server's: port, socket folder, loopback only

    def start(self) -> None:
        subprocess.run(
            [*self.pg_ctl, "-o", self.options, "-w", "start"], check=True, capture_output=True
        )

    def stop(self) -> None:
        """Fast: open connections are cut, as in a crash or a restart by the admin."""
        subprocess.run([*self.pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True)

    def restart(self, away: float = 0) -> None:
        """Stop it, and start it again `away` seconds later."""
        self.stop()
        time.sleep(away)
        self.start()


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """Start a cluster; yield it."""
    if not INSTALLED:
        raise UserError(
            "PostgreSQL's server is needed (/usr/lib/postgresql): apt install postgresql"
        )
    bin_dir = INSTALLED[-1].parent
    # Not under pytest's tmp_path: that is private to this user, and postgres must enter it.
    folder = Path(tempfile.mkdtemp(prefix="mnist-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    subprocess.run(
        as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    pg_ctl = as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log")])
    started = Cluster(f"postgresql://{SUPERUSER}@127.0.0.1:{port}", pg_ctl, options)
    started.start()
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(folder, ignore_errors=True)


ADMIN_PASSWORD = "team-admin-secret"


def server_env() -> dict[str, str]:
    """This environment, without a client's tracking settings, with the admin's password;
    `mlflow` from this interpreter's folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env | {"PATH": path, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD}


class TrackingServer:
    """`python -m team.server` on a database of the cluster, admin password ADMIN_PASSWORD,
    on a loopback port that stays the same across restarts. Its output goes to
    home/server.log."""

    def __init__(self, database: str, home: Path, workers: int = 1):
        home.mkdir(parents=True, exist_ok=True)
        self.database, self.home, self.log = database, home, home / "server.log"
        self.workers = workers
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it; return once /health answers."""
        with open(self.log, "a") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "team.server", "--database", f"{self.database}/mlflow",
                 "--home", str(self.home), "--port", self.url.rsplit(":", 1)[1],
                 "--workers", str(self.workers)],
                cwd=ROOT,
                env=server_env(),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so that mlflow's workers stop with it
            )  # fmt: skip
        deadline = time.monotonic() + 180
        while not healthy(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise UserError(f"the tracking server did not start:\n{self.log.read_text()}")
            time.sleep(0.5)

    def signal(self, number: int) -> None:
        """Signal the server and its workers. os.killpg, not `kill -TERM -PGID`: Debian
        12's kill (procps-ng 4.0.2) signals every process of the user for a negative PID."""
        os.killpg(self.process.pid, number)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.signal(signal.SIGCONT)  # a frozen server could not stop
            self.signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def restart(self, away: float = 0) -> None:
        """Stop it, and start it again `away` seconds later."""
        self.stop()
        time.sleep(away)
        self.start()


@contextlib.contextmanager
def tracking_server(database: str, home: Path, workers: int = 1) -> Iterator[TrackingServer]:
    """A TrackingServer, started; stopped at the end."""
    server = TrackingServer(database, home, workers)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def healthy(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/health", timeout=2).close()
        return True
    except OSError:
        return False
