"""Start the team's MLflow tracking server: runs and registry in PostgreSQL, behind a login.

    export MLFLOW_AUTH_ADMIN_PASSWORD=...     # the admin's password, used on the first start
    export PGPASSFILE=/srv/mlflow/.pgpass     # the database's password (or PGPASSWORD)
    python -m team.server --database postgresql://mlflow@localhost/mlflow \\
        --home /srv/mlflow --host 0.0.0.0 --port 443 \\
        --tls-cert /etc/ssl/mlflow/fullchain.pem --tls-key /etc/ssl/mlflow/privkey.pem

- With --tls-cert and --tls-key, nginx answers HTTPS on --host:--port in front of the
  MLflow server, which listens on loopback only, and refuses an address that guesses
  passwords (team/https.py). Without them, the MLflow server answers plain HTTP itself:
  for a trusted network, or behind a proxy of the team's own.
- No password on the command line, where `ps` shows it to every user of the machine:
  the database's comes from PGPASSWORD or a .pgpass file (PostgreSQL's client library
  reads them), the admin's from MLFLOW_AUTH_ADMIN_PASSWORD.

- The database is created on the first start (the PostgreSQL role needs CREATEDB then);
  it holds the runs, the registry and the users (MLflow's basic-auth app).
- Artifacts (models, plots) go to <home>/artifacts through the server: clients upload and
  download over HTTP(S) and never need this machine's disk (`--artifacts-destination`).
- <home> also keeps the login's settings (basic_auth.ini) and the key that signs the
  UI's sessions (secret_key, created once, readable by this user only).
- Everyone without an explicit permission may read (default_permission = READ); the admin
  grants EDIT to the people who train and promote (README, "Team set-up").

It prints the URI to give to clients, then becomes `mlflow server` (same process id), or
with TLS runs it and nginx and stops both when either ends: stop it with SIGTERM or
Ctrl+C. Arguments after `--` go to `mlflow server` unchanged, for example
`-- --allowed-hosts mlflow.example.com --cors-allowed-origins https://mlflow.example.com`
(the name clients use, as nginx passes it on, and the UI's origin: MLflow refuses
changes from any other page).
"""

import argparse
import os
import secrets
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

from core.errors import UserError, command

ADMIN = "admin"


class ServerError(UserError):
    pass


def check_database_uri(database_uri: str) -> None:
    """A postgresql:// URI without a password; ServerError saying why not."""
    parts = urlsplit(database_uri)
    if not parts.scheme.startswith("postgresql") or not parts.path.lstrip("/"):
        raise ServerError(
            f"--database must be postgresql://USER@HOST:PORT/NAME, not {database_uri}"
        )
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise ServerError(
            "--database holds a password, which every user of this machine would see "
            "(ps): give it in PGPASSWORD or a .pgpass file (PGPASSFILE) instead"
        )


def create_database(database_uri: str) -> None:
    """Create the database named by a postgresql:// URI unless it exists."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_uri)
    name = parts.path.lstrip("/")
    # Connect to the maintenance database with the same role to look for ours.
    maintenance = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))
    try:
        # autocommit: CREATE DATABASE cannot run inside a transaction
        with psycopg.connect(maintenance, connect_timeout=10, autocommit=True) as connection:
            if connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone():
                return
            # Checked before the database exists: a later start would not ask again.
            if not os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
                raise ServerError(
                    "set MLFLOW_AUTH_ADMIN_PASSWORD: the first start creates the user "
                    f"'{ADMIN}' with it (MLflow has no default password)"
                )
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as error:
        first_line = str(error).strip().splitlines()[0]
        raise ServerError(
            f"PostgreSQL at {parts.hostname}:{parts.port or 5432}: {first_line}"
        ) from None


def prepare_home(home: Path, database_uri: str) -> dict[str, str]:
    """Write the login settings and the session key under home; the server's environment."""
    (home / "artifacts").mkdir(parents=True, exist_ok=True)
    key_path = home / "secret_key"
    if not key_path.exists():
        key_path.touch(mode=0o600)
        key_path.write_text(secrets.token_hex(32))
    auth_config = home / "basic_auth.ini"
    auth_config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri.replace('%', '%%')}\n"  # configparser escapes %
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # MLflow checks the password (PBKDF2) on every request unless it caches the result:
        # about 1 run a second when seeding bench/tracking.py. A changed or revoked password
        # then still works for up to a minute on the workers that cached it.
        "auth_cache_ttl_seconds = 60\n"
    )
    auth_config.chmod(0o600)
    return {
        # MLflow's job runner (GenAI scorers, trace archival) starts seven more processes;
        # this project uses neither.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get(
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false"
        ),
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": key_path.read_text().strip(),
    }


def client_uri(host: str, port: int, scheme: str) -> str:
    """The URI clients use: this machine's name when the server listens on every address."""
    shown = socket.getfqdn() if host in ("0.0.0.0", "::") else host
    return f"{scheme}://{shown}:{port}"


def mlflow_server(args: argparse.Namespace, host: str, port: int) -> list[str]:
    return [
        "mlflow", "server",
        "--app-name", "basic-auth",
        "--backend-store-uri", args.database,
        "--artifacts-destination", (args.home.resolve() / "artifacts").as_uri(),
        "--host", host,
        "--port", str(port),
        "--workers", str(args.workers),
        *args.mlflow_args,
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("MLFLOW_BACKEND_STORE_URI"),
        help="postgresql://USER@HOST:PORT/NAME (or $MLFLOW_BACKEND_STORE_URI); the password "
        "in PGPASSWORD or a .pgpass file",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=Path("mlflow-server"),
        help="folder for artifacts, login settings and session key (./mlflow-server)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (5000)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (2)")
    parser.add_argument("--tls-cert", type=Path, help="certificate chain (PEM): serve HTTPS")
    parser.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    parser.add_argument("mlflow_args", nargs="*", help="after --: more `mlflow server` options")
    args = parser.parse_args()
    if not args.database:
        raise UserError("give --database postgresql://... or set MLFLOW_BACKEND_STORE_URI")

    if bool(args.tls_cert) != bool(args.tls_key):
        raise UserError("give both --tls-cert and --tls-key, or neither")
    check_database_uri(args.database)
    home = args.home.resolve()
    if args.tls_cert:  # its certificate and config checked before anything is created
        from serving.server import free_port
        from team import https

        mlflow_port = free_port()
        front = https.front(home, args.host, args.port, args.tls_cert, args.tls_key, mlflow_port)
    create_database(args.database)
    env = dict(os.environ, **prepare_home(home, args.database))

    if not args.tls_cert:
        announce(client_uri(args.host, args.port, "http"))
        server = mlflow_server(args, args.host, args.port)
        os.execvpe(server[0], server, env)
    announce(client_uri(args.host, args.port, "https"))
    https.serve(mlflow_server(args, "127.0.0.1", mlflow_port), env, front)


def announce(uri: str) -> None:
    print(f"tracking server for the team: {uri}", flush=True)
    print(
        f"clients: export MLFLOW_TRACKING_URI={uri} MLFLOW_TRACKING_USERNAME=<user> "
        "MLFLOW_TRACKING_PASSWORD=<password>",
        flush=True,
    )


if __name__ == "__main__":
    command(main, left_whole="the MLflow server (and nginx) stopped")
