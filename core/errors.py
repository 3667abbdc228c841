"""The one error rule of every command.

Library code raises `UserError` (or a subclass) for what the user can fix, with one line
saying what and how; it never exits. Every command runs its main() through `command`:

- a UserError, a login, permission or connection error from MLflow, or a file that cannot
  be read or written: one line `error: ...` on stderr, exit 1;
- bad usage: argparse's own message, exit 2;
- Ctrl+C: exit 130, SIGTERM: exit 143, with one line saying what was left whole;
- anything else is a bug: its traceback, exit 1.
"""

import signal
import sys
from collections.abc import Callable

LEFT_WHOLE = (
    "files written so far are whole, and an MLflow run in progress is marked KILLED; run "
    "the command again to go on (training resumes after its last whole epoch)"
)


class UserError(Exception):
    """Something the user can fix; the message says what, in one line."""


class ModelMissing(UserError):
    """A registry URI that names no version, or a version whose files are gone."""


class Stopped(BaseException):
    """SIGTERM arrived. A BaseException, as KeyboardInterrupt is, so that no `except
    Exception` swallows it and every `with` block on the way out closes what it opened."""


def raise_stopped(signum: int, frame) -> None:
    raise Stopped("SIGTERM")


def stop_reason(error: BaseException) -> str:
    return "Ctrl+C" if isinstance(error, KeyboardInterrupt) else "SIGTERM"


def one_line(error: Exception) -> str | None:
    """The line a user reads for an error they can fix, or None for a bug."""
    from core.paths import shown
    from core.store import explain  # MLflow's errors, which need the store's address

    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, OSError) and error.filename:
        return f"{shown(error.filename)}: {error.strerror}"
    return explain(error)


def command(main: Callable[[], None], left_whole: str = LEFT_WHOLE) -> None:
    """Run a command's main() under the rule above; `left_whole` says, on Ctrl+C or
    SIGTERM, what the command leaves behind."""
    signal.signal(signal.SIGTERM, raise_stopped)
    try:
        main()
    except (KeyboardInterrupt, Stopped) as stop:
        print(f"stopped by {stop_reason(stop)}: {left_whole}", file=sys.stderr)
        raise SystemExit(130 if isinstance(stop, KeyboardInterrupt) else 143) from None
    except Exception as error:
        message = one_line(error)
        if message is None:
            raise
        raise SystemExit(f"error: {message}") from None
