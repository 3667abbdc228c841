"""A throwaway team on loopback, for the tests and bench/tracking.py; each part stops
what it started:

- `cluster()`: a throwaway PostgreSQL cluster (Debian's server binaries, a folder of its
  own, a free port). `initdb` refuses to run as root (and CI runs as root): as root, the
  cluster belongs to the `postgres` system user and its commands run as that user.
- `tracking_server(database, home)`: `python -m team.server` on it, with its login.
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
from pathlib import Path

from core.errors import UserError
from core.paths import ROOT
from serving.server import free_port

# Debian keeps each major version's server programs apart; take the newest.
INSTALLED = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
SUPERUSER = "team"


def as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """Start a cluster; yield a URI of its superuser without a database name
    (postgresql://team@127.0.0.1:PORT)."""
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
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log")]
    subprocess.run(
        as_owner([*pg_ctl, "-o", options, "-w", "start"]), check=True, capture_output=True
    )
    try:
        yield f"postgresql://{SUPERUSER}@127.0.0.1:{port}"
    finally:
        subprocess.run(as_owner([*pg_ctl, "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


ADMIN_PASSWORD = "team-admin-secret"


def server_env() -> dict[str, str]:
    """This environment, without a client's tracking settings, with the admin's password;
    `mlflow` from this interpreter's folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env | {"PATH": path, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD}


@contextlib.contextmanager
def tracking_server(database: str, home: Path) -> Iterator[str]:
    """`python -m team.server` on a database of the cluster, admin password ADMIN_PASSWORD;
    yields its URL once /health answers. Its output goes to home/server.log."""
    home.mkdir(parents=True, exist_ok=True)
    port, log = free_port(), home / "server.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "team.server", "--database", f"{database}/mlflow",
             "--home", str(home), "--port", str(port), "--workers", "1"],
            cwd=ROOT,
            env=server_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that mlflow's workers stop with it
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise UserError(f"the tracking server did not start:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        # os.killpg, not `kill -TERM -PGID`: Debian 12's kill (procps-ng 4.0.2) signals
        # every process of the user for a negative PID.
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def healthy(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/health", timeout=2).close()
        return True
    except OSError:
        return False
