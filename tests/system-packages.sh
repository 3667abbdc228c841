#!/usr/bin/env bash
# The system packages `make test` needs besides Python's: a virtual screen and a pointer
# (the drawing app's tests), nginx (the production endpoint's), Prometheus (its monitoring),
# PostgreSQL's server (the team server's), Tk (the app). As root on Debian or Ubuntu it
# installs what is missing; otherwise it names, in one line, the command that does, and fails.
set -euo pipefail
missing=()
command -v Xvfb >/dev/null || missing+=(xvfb)
command -v xdotool >/dev/null || missing+=(xdotool)
command -v hey >/dev/null || missing+=(hey)  # bench/load.py
command -v prometheus >/dev/null || missing+=(prometheus)  # tests/test_monitoring.py
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
# the team server's HTTPS front counts failed logins in Lua (team/https.py)
[ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || missing+=(libnginx-mod-http-lua)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
"${PYTHON:-python}" -c "import tkinter" 2>/dev/null || missing+=(python3-tk)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "make test needs system packages: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
