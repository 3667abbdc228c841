"""Where runs and models are kept: $MLFLOW_TRACKING_URI, or SQLite at the repository root.

`use_store` checks a tracking server before any work starts and raises StoreError with
one line saying what to fix; `explain` gives that line for the login, permission and
connection errors MLflow raises later (core/errors.py prints it).

A server that cannot be reached (refused, reset, unknown host, no route) is one line
within seconds. A server that takes the connection but is slow to answer (busy,
swapping, frozen) is waited for, DIGITS_SERVER_WAIT seconds (60), saying so once.
An https:// server is trusted as MLflow's client trusts it: the CA certificate in
MLFLOW_TRACKING_SERVER_CERT_PATH, else requests' bundle (certifi, or REQUESTS_CA_BUNDLE);
a certificate it does not trust is one line too.
"""

import base64
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from core.errors import UserError
from core.paths import STORE_ROOT


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{STORE_ROOT / 'mlflow.db'}"


# MLflow's own defaults retry a failed request 7 times with a backoff factor of 2 and wait
# 120 s for an answer: a server that is down hangs a command for minutes, without a word.
# `check_server` answers that in seconds; once a command runs, these settings let it ride
# out a restart of the server or of its database (10-35 s here): 6 retries, after 0, 2, 4,
# 8, 16 and 32 s (urllib3's backoff), about a minute in all. The user's own settings win.
HTTP_SETTINGS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "6",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
CHECK_TIMEOUT = 5  # seconds to connect, and seconds each try of the first request may take
SERVER_WAIT = 60  # seconds a slow server is waited for, unless DIGITS_SERVER_WAIT says


class StoreError(UserError):
    """The store cannot be used; the message says what to check."""


def use_store(experiment: str | None = None) -> None:
    """Point MLflow at the store and, when given, at the experiment (created if missing)."""
    import mlflow

    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        for name, value in HTTP_SETTINGS.items():
            os.environ.setdefault(name, value)
        check_server(uri)
    mlflow.set_tracking_uri(uri)
    if experiment is None or mlflow.get_experiment_by_name(experiment):
        pass
    elif "MLFLOW_TRACKING_URI" in os.environ:
        mlflow.create_experiment(experiment)  # the server decides where artifacts go
    else:
        mlflow.create_experiment(experiment, artifact_location=(STORE_ROOT / "mlruns").as_uri())
    if experiment:
        mlflow.set_experiment(experiment)


def login_hint(uri: str) -> str:
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if not user or not os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        return f"{uri} asks for a login: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    return (
        f"{uri} refused the login of user '{user}': check MLFLOW_TRACKING_USERNAME "
        "and MLFLOW_TRACKING_PASSWORD"
    )


def check_server(uri: str) -> None:
    """One quick authenticated request to a tracking server; StoreError if it fails. A
    server that takes the connection but does not answer is tried again until
    DIGITS_SERVER_WAIT seconds have passed."""
    connect(uri)
    wait = float(os.environ.get("DIGITS_SERVER_WAIT") or SERVER_WAIT)
    deadline, said = time.monotonic() + wait, False
    while True:
        try:
            return ask(uri, timeout=max(min(CHECK_TIMEOUT, deadline - time.monotonic()), 0.1))
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"the tracking server {uri} took the connection but did not answer in "
                    f"{wait:g} s: it may be overloaded; try again, or wait longer with "
                    "DIGITS_SERVER_WAIT"
                ) from None
            if not said:
                print(
                    f"waiting for the tracking server {uri}: connected, but no answer yet "
                    f"(up to {wait:g} s, DIGITS_SERVER_WAIT)",
                    file=sys.stderr,
                    flush=True,
                )
                said = True


def connect(uri: str) -> None:
    """Open and close a TCP connection to the server: what cannot be reached fails here."""
    address = urllib.parse.urlsplit(uri)
    port = address.port or (443 if address.scheme == "https" else 80)
    try:
        socket.create_connection((address.hostname, port), timeout=CHECK_TIMEOUT).close()
    except OSError as error:
        raise unreachable(uri, "timed out" if isinstance(error, TimeoutError) else error) from None


def unreachable(uri: str, reason: object) -> StoreError:
    reason = getattr(reason, "strerror", None) or reason
    return StoreError(
        f"cannot reach the tracking server {uri} ({reason}): check that it is running "
        "and that MLFLOW_TRACKING_URI is right"
    )


def trusted_certificates() -> ssl.SSLContext:
    """What MLflow's client (requests) verifies a server's certificate with."""
    import certifi

    return ssl.create_default_context(
        cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
        or os.environ.get("REQUESTS_CA_BUNDLE")
        or certifi.where()
    )


def ask(uri: str, timeout: float) -> None:
    """The first request; raises TimeoutError when the server is slow to answer."""
    request = urllib.request.Request(
        f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1"
    )
    user, password = (os.environ.get(f"MLFLOW_TRACKING_{k}") for k in ("USERNAME", "PASSWORD"))
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        context = trusted_certificates() if uri.startswith("https://") else None
        urllib.request.urlopen(request, timeout=timeout, context=context).close()
    except urllib.error.HTTPError as error:
        if error.code == 401:
            raise StoreError(login_hint(uri)) from None
        raise StoreError(
            f"{uri} answered {error.code} {error.reason} to an MLflow request: "
            "is MLFLOW_TRACKING_URI the address of an MLflow tracking server?"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError):
            raise TimeoutError from None
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise StoreError(
                f"{uri} presents a certificate this machine does not trust "
                f"({reason.verify_message}): set MLFLOW_TRACKING_SERVER_CERT_PATH to the "
                "certificate of the CA that signed it"
            ) from None
        raise unreachable(uri, reason) from None


def explain(error: Exception) -> str | None:
    """One line for a login, permission or connection error from MLflow, else None."""
    from mlflow.exceptions import MlflowException

    if not isinstance(error, MlflowException):
        return None
    uri = tracking_uri()
    if error.error_code == "UNAUTHENTICATED":
        return login_hint(uri)
    if error.error_code == "PERMISSION_DENIED":
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "anonymous")
        return (
            f"user '{user}' may not do this on {uri} (permission denied): ask the server's "
            "admin for EDIT permission (README, Team set-up)"
        )
    if "Max retries exceeded" in str(error):
        return f"lost the tracking server {uri}: check that it is running, then run again"
    return None
