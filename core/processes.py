"""Stopping what we started: each child service runs in a process group of its own
(`start_new_session=True`), and is stopped with its whole group, so that nothing it
started itself (uvicorn's workers, nginx's) outlives it."""

import contextlib
import os
import signal
import subprocess


def signal_group(group: int, number: int) -> None:
    """Signal a process group; one that is already gone is no error. os.killpg, not
    `kill -TERM -PGID`: Debian 12's kill (procps-ng 4.0.2) signals every process of the
    user for a negative PID."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, number)


def stop_group(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the process and its group, SIGKILL to what is left after `grace`
    seconds; safe to repeat."""
    signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    # Whatever it started may outlive it (it was killed alone).
    signal_group(process.pid, signal.SIGKILL)
    process.wait()
