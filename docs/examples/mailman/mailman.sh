#!/usr/bin/env bash
# Install GNU Mailman 3 core into its own virtualenv and run it on loopback for privacy-checks.
#
#   docs/examples/mailman/mailman.sh start   # install (once), configure, start; writes $MAILMAN_HOME/env
#   docs/examples/mailman/mailman.sh stop    # stop it (the data stays in $MAILMAN_HOME/var)
#
# Settings (environment):
#   MAILMAN_HOME       where everything goes (default: .mailman in the current directory)
#   MAILMAN_VENV       the virtualenv to install into or reuse (default: $MAILMAN_HOME/venv)
#   MAILMAN_VERSION    pip requirement (default: mailman>=3.3,<3.4)
#   MAILMAN_SMTP_PORT  where Mailman sends its mail: privacy-checks' SMTP capture (capture.smtp.bind
#                      in profile.yaml); default: a free loopback port, written to the env file
#   PYTHON             the interpreter the virtualenv is made with (default: python3)
#
# The env file holds what profile.yaml reads: MAILMAN_REST_URL, MAILMAN_REST_USER,
# MAILMAN_REST_PASSWORD (a fresh random password each start), MAILMAN_VAR, MAILMAN_LMTP_PORT,
# MAILMAN_SMTP_PORT, MAILMAN_EXAMPLE. Source it before running pytest.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="$(mkdir -p "${MAILMAN_HOME:-.mailman}" && cd "${MAILMAN_HOME:-.mailman}" && pwd)"
venv="${MAILMAN_VENV:-$home/venv}"
var="$home/var"
cfg="$home/mailman.cfg"
python="${PYTHON:-python3}"

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

mailman() {
  # Mailman refuses to run as root unless told; CI containers run as root.
  local root=()
  [ "$(id -u)" = 0 ] && root=(--run-as-root)
  "$venv/bin/mailman" "${root[@]}" -C "$cfg" "$@"
}

install() {
  if [ ! -x "$venv/bin/mailman" ]; then
    echo "installing ${MAILMAN_VERSION:-mailman>=3.3,<3.4} into $venv" >&2
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet "${MAILMAN_VERSION:-mailman>=3.3,<3.4}"
  fi
}

start() {
  install
  mkdir -p "$var"
  if [ -f "$var/master.pid" ] && kill -0 "$(cat "$var/master.pid")" 2>/dev/null; then
    echo "Mailman is already running (pid $(cat "$var/master.pid")); stop it first" >&2
    exit 1
  fi
  local rest_port lmtp_port smtp_port password
  rest_port="$(free_port)"
  lmtp_port="$(free_port)"
  smtp_port="${MAILMAN_SMTP_PORT:-$(free_port)}"
  password="$("$python" -c 'import secrets; print(secrets.token_urlsafe(24))')"
  # Loopback only; SQLite; mail goes out over SMTP to privacy-checks' capture server and comes
  # in over LMTP (the path an MTA would use); no MTA aliases to write (NullMTA).
  cat > "$cfg" <<CFG
[mailman]
layout: here
site_owner: postmaster@lists.example.com

[paths.here]
var_dir: $var

[database]
class: mailman.database.sqlite.SQLiteDatabase
url: sqlite:///$var/data/mailman.db

[webservice]
hostname: 127.0.0.1
port: $rest_port
admin_user: restadmin
admin_pass: $password

[mta]
incoming: mailman.mta.null.NullMTA
outgoing: mailman.mta.deliver.deliver
lmtp_host: 127.0.0.1
lmtp_port: $lmtp_port
smtp_host: 127.0.0.1
smtp_port: $smtp_port
CFG
  chmod 600 "$cfg"
  # stdin/stdout closed: the master forks runners that would otherwise keep a caller's pipe open
  mailman start </dev/null >"$home/start.log" 2>&1
  local url="http://127.0.0.1:$rest_port/3.1"
  # wait for the REST API (its runners start in about 10 s on an idle machine; up to 300 s),
  # then add the domain every subject's list lives in; one clear line if it never answers
  "$venv/bin/python" - "$url" restadmin "$password" "$var/logs/mailman.log" <<'PY'
import sys, time, requests
url, auth, log = sys.argv[1], (sys.argv[2], sys.argv[3]), sys.argv[4]
deadline, last = time.monotonic() + 300, None
while time.monotonic() < deadline:
    try:
        requests.get(f"{url}/system/versions", auth=auth, timeout=5).raise_for_status()
        break
    except requests.RequestException as exc:
        last = exc
        time.sleep(0.5)
else:
    sys.exit(f"Mailman's REST API at {url} did not answer within 300 s ({last}); see {log}")
r = requests.get(f"{url}/domains/lists.example.com", auth=auth, timeout=10)
if r.status_code == 404:
    requests.post(f"{url}/domains", json={"mail_host": "lists.example.com"}, auth=auth, timeout=10).raise_for_status()
else:
    r.raise_for_status()
PY
  cat > "$home/env" <<ENV
export MAILMAN_REST_URL=$url
export MAILMAN_REST_USER=restadmin
export MAILMAN_REST_PASSWORD=$password
export MAILMAN_VAR=$var
export MAILMAN_LMTP_PORT=$lmtp_port
export MAILMAN_SMTP_PORT=$smtp_port
export MAILMAN_EXAMPLE=$here
ENV
  chmod 600 "$home/env"
  echo "$("$venv/bin/mailman" --version 2>/dev/null || echo Mailman) on $url; LMTP 127.0.0.1:$lmtp_port; SMTP out to 127.0.0.1:$smtp_port"
  echo "env: . $home/env"
}

stop() {
  if [ -f "$cfg" ] && [ -x "$venv/bin/mailman" ]; then
    mailman stop </dev/null >/dev/null 2>&1 || true
    # the master waits for its runners; give it a moment, then make sure
    for _ in $(seq 1 40); do
      [ -f "$var/master.pid" ] && kill -0 "$(cat "$var/master.pid")" 2>/dev/null || break
      sleep 0.25
    done
    if [ -f "$var/master.pid" ] && kill -0 "$(cat "$var/master.pid")" 2>/dev/null; then
      pid=$(cat "$var/master.pid")
      kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      # return only once Mailman is gone: a caller that starts it again must not meet the old one
      for _ in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
      done
      kill -KILL "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  install) install ;;
  *) echo "usage: $0 start|stop|install" >&2; exit 2 ;;
esac
