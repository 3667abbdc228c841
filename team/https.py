"""The team server's front door: nginx with the certificate, in front of the MLflow
server, which then listens on loopback only (`python -m team.server --tls-cert --tls-key`).

- TLS 1.2 and 1.3 with the given certificate chain and key (a plain-HTTP request gets
  nginx's 400).
- Guessed passwords: a request with a login that MLflow refuses (401) is counted for its
  address; after MAX_FAILED such answers within WINDOW seconds, the address gets 429 for
  REFUSED_FOR seconds, before MLflow sees the request (and hashes its password). Other
  addresses are unaffected. The counts live in nginx's shared memory (Lua,
  Debian's libnginx-mod-http-lua) and start again when the server restarts.
- Its config and logs are in <home>/nginx. The access log is nginx's usual one: address,
  user name, request and status, never a password.

`serve` runs both, and stops both when either ends, or on SIGTERM or Ctrl+C: a
supervisor (systemd's Restart=on-failure, docs/team.md) then starts the pair again.
"""

import signal
import subprocess
import time
from pathlib import Path

from core import nginx
from core.errors import UserError
from core.processes import stop_group

MAX_FAILED = 10
WINDOW = 60
REFUSED_FOR = 60
REFUSED = (
    '{"error_code": "TOO_MANY_FAILED_LOGINS", "message": "too many failed logins from '
    f'this address: try again in {REFUSED_FOR} s"}}'
)
MODULES = Path("/usr/lib/nginx/modules")

CONFIG = """\
# Written by python -m team.server at each start.
load_module {modules}/ndk_http_module.so;
load_module {modules}/ngx_http_lua_module.so;
{main}
http {{
    access_log {home}/access.log;
{temp_paths}
    # Models and plots go up and down through here: no size limit, streamed both ways.
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    lua_shared_dict failed_logins 1m;

    upstream mlflow {{
        server 127.0.0.1:{mlflow_port};
        keepalive 16;
        keepalive_timeout 4s;  # under uvicorn's 5 s, so nginx never reuses one it closed
    }}

    server {{
        listen {host}:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;

        location / {{
            access_by_lua_block {{
                if ngx.shared.failed_logins:get("refused " .. ngx.var.remote_addr) then
                    ngx.status = 429
                    ngx.header["Content-Type"] = "application/json"
                    ngx.header["Retry-After"] = "{refused_for}"
                    ngx.say('{refused}')
                    return ngx.exit(429)
                end
            }}
            log_by_lua_block {{
                -- A login was sent and refused. (401 without one is a browser's first visit.)
                if ngx.status == 401 and ngx.var.http_authorization then
                    local failed = ngx.shared.failed_logins
                    local address = ngx.var.remote_addr
                    if failed:incr(address, 1, 0, {window}) >= {max_failed} then
                        failed:set("refused " .. address, true, {refused_for})
                        failed:delete(address)
                    end
                end
            }}
            proxy_pass http://mlflow;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;  # what MLflow's --allowed-hosts checks
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def front(home: Path, host: str, port: int, cert: Path, key: Path, mlflow_port: int) -> nginx.Nginx:
    """nginx for the server in home, its config written and checked."""
    for name, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise UserError(f"{name} {path}: no such file")
    if not (MODULES / "ngx_http_lua_module.so").exists():
        raise UserError("nginx's Lua module is not installed: apt install libnginx-mod-http-lua")
    server = nginx.Nginx(home / "nginx")
    server.write(
        CONFIG.format(
            **server.settings(),
            modules=MODULES,
            host=host,
            port=port,
            cert=cert.resolve(),
            key=key.resolve(),
            mlflow_port=mlflow_port,
            max_failed=MAX_FAILED,
            window=WINDOW,
            refused_for=REFUSED_FOR,
            refused=REFUSED,
        )
    )
    return server


def serve(mlflow_server: list[str], env: dict[str, str], https: nginx.Nginx) -> None:
    """Run the MLflow server and nginx until one of them ends (UserError saying which)
    or the command is stopped; both are stopped either way."""
    mlflow = subprocess.Popen(mlflow_server, env=env, start_new_session=True)
    try:
        https.start()
        while mlflow.poll() is None and https.alive():
            time.sleep(1)
        ended, code = ("MLflow", mlflow.returncode) if mlflow.poll() is not None else (
            "nginx", https.process.returncode
        )  # fmt: skip
        raise UserError(
            f"{ended} stopped (exit code {code}), so the server stops: the reason is in "
            f"{https.home / 'error.log' if ended == 'nginx' else 'the lines above'}"
        )
    finally:
        # A second SIGTERM or Ctrl+C must not cut the stopping short and orphan either.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        https.stop()
        stop_group(mlflow)
