"""A throwaway team on loopback, for the tests and bench/tracking.py; each part stops
what it started:

- `cluster()`: a throwaway PostgreSQL cluster (Debian's server binaries, a folder of its
  own, a free port) that asks for a password (SCRAM), as a real one does; clients find
  it in the cluster's .pgpass file (`Cluster.env`). `initdb` refuses to run as root (and
  CI runs as root): as root, the cluster belongs to the `postgres` system user and its
  commands run as that user.
- `certificates(folder)`: a throwaway CA and a certificate it signed for 127.0.0.1.
- `tracking_server(cluster, home, tls=...)`: `python -m team.server` on it, with its
  login, over HTTPS when given certificates.

Both can be restarted, and the server frozen, as the fault tests need (tests/test_team_faults.py).
"""

import contextlib
import os
import secrets
import shutil
import signal
import ssl
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
from core.processes import signal_group
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
    password: str  # the superuser's, for the tests that look for it where it must not be
    passfile: Path  # .pgpass format, readable by this user only

    @property
    def env(self) -> dict[str, str]:
        """What a client of the cluster (psql, pg_dump, team.server) needs beside the URI."""
        return {"PGPASSFILE": str(self.passfile)}

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
    data, port, password = folder / "data", free_port(), secrets.token_urlsafe(16)
    password_file = private_file(folder / "initdb-password", password, owner="postgres")
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER]
    initdb += ["--auth=scram-sha-256", f"--pwfile={password_file}"]
    try:
        subprocess.run(as_owner(initdb), check=True, capture_output=True)
    finally:
        password_file.unlink()
    passfile = private_file(folder / "pgpass", f"127.0.0.1:{port}:*:{SUPERUSER}:{password}\n")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    pg_ctl = as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log")])
    uri = f"postgresql://{SUPERUSER}@127.0.0.1:{port}"
    started = Cluster(uri, pg_ctl, options, password, passfile)
    started.start()
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(folder, ignore_errors=True)


def private_file(path: Path, text: str, owner: str | None = None) -> Path:
    """Write text to a file only its owner may read: this user, or `owner` when root."""
    path.touch(mode=0o600)
    path.write_text(text)
    if owner and os.geteuid() == 0:
        shutil.chown(path, owner, owner)
    return path


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA's certificate: what clients trust (MLFLOW_TRACKING_SERVER_CERT_PATH)
    cert: Path  # the server's, for 127.0.0.1, signed by the CA
    key: Path  # the server's private key


def certificates(folder: Path) -> Certificates:
    """A CA of our own, and a certificate it signed for the address 127.0.0.1 (openssl)."""
    folder.mkdir(parents=True, exist_ok=True)
    made = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    (folder / "server.ext").write_text(
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = critical, CA:FALSE\n"
    )
    for step in (
        ["req", "-x509", *new_key, "-subj", "/CN=test team CA", "-days", "2",
         "-keyout", folder / "ca.key", "-out", made.ca],
        ["req", *new_key, "-subj", "/CN=127.0.0.1", "-keyout", made.key,
         "-out", folder / "server.csr"],
        ["x509", "-req", "-in", folder / "server.csr", "-CA", made.ca, "-CAkey",
         folder / "ca.key", "-days", "2", "-extfile", folder / "server.ext", "-out", made.cert],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, step)], check=True, capture_output=True)
    return made


ADMIN_PASSWORD = "team-admin-secret"


def server_env() -> dict[str, str]:
    """This environment, without a client's tracking settings, with the admin's password;
    `mlflow` from this interpreter's folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env | {"PATH": path, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD}


class TrackingServer:
    """`python -m team.server` on a database of the cluster, admin password ADMIN_PASSWORD,
    on a loopback port that stays the same across restarts, over HTTPS with `tls`. Its
    output goes to home/server.log."""

    def __init__(
        self, cluster: Cluster, home: Path, workers: int = 1, tls: Certificates | None = None
    ):
        home.mkdir(parents=True, exist_ok=True)
        self.cluster, self.home, self.log = cluster, home, home / "server.log"
        self.workers, self.tls = workers, tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start it; return once /health answers."""
        with open(self.log, "a") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "team.server", "--database", f"{self.cluster.uri}/mlflow",
                 "--home", str(self.home), "--port", self.url.rsplit(":", 1)[1],
                 "--workers", str(self.workers), *self.tls_options()],
                cwd=ROOT,
                env=server_env() | self.cluster.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so that mlflow's workers stop with it
            )  # fmt: skip
        deadline = time.monotonic() + 180
        while not healthy(self.url, self.tls):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise UserError(f"the tracking server did not start:\n{self.log.read_text()}")
            time.sleep(0.5)

    def tls_options(self) -> list[str]:
        if not self.tls:
            return []
        return ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]

    def signal(self, number: int) -> None:
        """Signal the server and its workers."""
        signal_group(self.process.pid, number)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.signal(signal.SIGCONT)  # a frozen server could not stop
            self.signal(signal.SIGTERM)
            self.process.wait(timeout=90)  # with TLS: nginx's 30 s, then MLflow's 30 s

    def restart(self, away: float = 0) -> None:
        """Stop it, and start it again `away` seconds later."""
        self.stop()
        time.sleep(away)
        self.start()


@contextlib.contextmanager
def tracking_server(
    cluster: Cluster, home: Path, workers: int = 1, tls: Certificates | None = None
) -> Iterator[TrackingServer]:
    """A TrackingServer, started; stopped at the end."""
    server = TrackingServer(cluster, home, workers, tls)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def healthy(url: str, tls: Certificates | None = None) -> bool:
    context = ssl.create_default_context(cafile=tls.ca) if tls else None
    try:
        urllib.request.urlopen(f"{url}/health", timeout=2, context=context).close()
        return True
    except OSError:
        return False
