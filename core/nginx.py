"""nginx in the foreground, as a child process of ours, its config, pid file, logs and
temporary files in one folder: what the production endpoint (serving/production.py) and
the team server's HTTPS front (team/https.py) each run.

Their configs start with `{main}`, then `{temp_paths}` inside `http {}`: `settings()`
fills them, and `{home}`, the folder.
"""

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from core.errors import UserError
from core.processes import signal_group

MAIN = """\
daemon off;
worker_processes 1;
pid {home}/nginx.pid;
error_log {home}/error.log warn;
{user}
events {{
    worker_connections 1024;
}}
"""
TEMP_PATHS = """\
    client_body_temp_path {home}/tmp/body;
    proxy_temp_path {home}/tmp/proxy;
    fastcgi_temp_path {home}/tmp/fastcgi;
    uwsgi_temp_path {home}/tmp/uwsgi;
    scgi_temp_path {home}/tmp/scgi;"""


def worker_user(home: Path) -> str:
    """nginx's `user` line: as root, its workers run as the owner of home (they write
    request bodies there); otherwise they run as the user who started it."""
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(home.stat().st_uid).pw_name};"


def binary() -> str:
    """nginx's path; UserError if it is not installed."""
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).exists():
        raise UserError("nginx is not installed: apt install nginx-light")
    return found


class Nginx:
    def __init__(self, home: Path):
        self.home = home  # created if missing
        home.mkdir(parents=True, exist_ok=True)
        self.config = home / "nginx.conf"
        self.process: subprocess.Popen | None = None

    def settings(self) -> dict[str, str]:
        """The parts every config of ours shares: `home`, `main` and `temp_paths`."""
        home = {"home": str(self.home)}
        return home | {
            "main": MAIN.format(**home, user=worker_user(self.home)),
            "temp_paths": TEMP_PATHS.format(**home),
        }

    def command(self, *extra: str) -> list[str]:
        # -e: the log of the start itself, before the config names one
        return [binary(), "-p", str(self.home), "-c", str(self.config)] + [
            "-e", str(self.home / "error.log"), *extra
        ]  # fmt: skip

    def write(self, text: str) -> None:
        """Write the config; UserError, with nginx's reason, if nginx refuses it."""
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)
        self.config.write_text(text)
        check = subprocess.run(self.command("-t", "-q"), capture_output=True, text=True)
        if check.returncode != 0:
            raise UserError(f"nginx refused {self.config}: {check.stderr.strip()}")

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), start_new_session=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def reload(self) -> None:
        """Load the config written last; return once the old workers have finished."""
        import psutil

        old_workers = psutil.Process(self.process.pid).children()
        self.process.send_signal(signal.SIGHUP)
        psutil.wait_procs(old_workers, timeout=160)

    def stop(self) -> None:
        """Stop nginx and its workers, in any state; safe to repeat."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGQUIT)  # finish the requests in flight
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        signal_group(self.process.pid, signal.SIGKILL)  # workers of a master that died
        self.process.wait()
