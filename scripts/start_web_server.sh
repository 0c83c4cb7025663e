#!/usr/bin/env bash
# Starts the web server in the background (start_central_server.sh runs it after migrating):
# nginx on DMARKET_BIND:DMARKET_PORT before two gunicorn pools (doc/deploy.md, "The front"),
# or gunicorn alone. Does nothing for what already runs.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$DMARKET_HOME"
[ -x "$PY" ] || { echo "Run ./install.sh first." >&2; exit 1; }

# answering PATH METHOD NAME: waits until a request from this host gets any answer of the
# server's own (a 401 without a token; a 400 for a host name ALLOWED_HOSTS leaves out; a 301
# to HTTPS), not none and not nginx's 502 or 504 for a pool that does not answer.
answering() {
  local code
  for _ in $(seq 100); do
    code=$("$PY" - "$probe_host" "$DMARKET_PORT" "$1" "$2" <<'PY' 2>/dev/null || echo 0
import http.client, sys
host, port, path, method = sys.argv[1:]
try:
    connection = http.client.HTTPConnection(host, int(port), timeout=2)
    connection.request(method, path, body=b"{}" if method == "POST" else None,
                       headers={"Content-Type": "application/json"})
    print(connection.getresponse().status)
except Exception:
    print(0)
PY
)
    case $code in 0|502|504) sleep 0.2 ;; *) return 0 ;; esac
  done
  echo "$3 does not answer at $probe_host:$DMARKET_PORT$1 ($code); see $DMARKET_LOG_DIR/server.log" \
       "and nginx.log" >&2
  exit 1
}

mkdir -p "$DMARKET_RUN_DIR/server"
# Only the server's user may reach the pools' sockets (dmarket/common/front.py).
chmod 700 "$DMARKET_RUN_DIR/server"
# Where this host reaches the server: the wildcards are reached on the loopback address.
case $DMARKET_BIND in
  0.0.0.0|::|"[::]") probe_host=127.0.0.1 ;;
  *) probe_host=${DMARKET_BIND#[}; probe_host=${probe_host%]} ;;
esac

# The front (doc/deploy.md): nginx on the address, machines' heartbeats to a pool of sync
# workers and the rest to gthread workers, each pool on a Unix socket. DMARKET_FRONT=off,
# or no nginx installed: one gthread pool on the address, as before the front.
front=${DMARKET_FRONT:-auto}
nginx=${DMARKET_NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
if [ "$front" = auto ]; then
  if [ -x "$nginx" ]; then front=nginx; else front=off; fi
fi
case $front in
  nginx) web_bind=unix:$DMARKET_RUN_DIR/server/web.sock ;;
  off) web_bind=$DMARKET_BIND:$DMARKET_PORT ;;
  *) echo "DMARKET_FRONT must be auto, nginx or off, not '$front'" >&2; exit 1 ;;
esac
# A server started the other way is not taken over: it is stopped first.
if { [ "$front" = nginx ] && pid_alive "$DMARKET_RUN_DIR/server/gunicorn.pid" \
       && [ ! -S "$DMARKET_RUN_DIR/server/web.sock" ]; } \
   || { [ "$front" = off ] && { pid_alive "$DMARKET_RUN_DIR/server/nginx.pid" \
       || pid_alive "$DMARKET_RUN_DIR/server/heartbeat.pid"; }; }; then
  echo "the web server runs $([ "$front" = off ] && echo with || echo without) its front;" \
       "run scripts/stop_central_server.sh first" >&2
  exit 1
fi
# A Unix socket's path holds at most 107 bytes.
if [ "$front" = nginx ] && [ ${#DMARKET_RUN_DIR} -gt 90 ]; then
  echo "DMARKET_DATA_DIR is too long for the pools' sockets ($DMARKET_RUN_DIR/server/web.sock" \
       "must be under 108 bytes): choose a shorter one, or DMARKET_FRONT=off" >&2
  exit 1
fi

# wait_pid PIDFILE NAME LOG: until the process that daemonized writes its pid file.
wait_pid() {
  for _ in $(seq 100); do
    pid_alive "$1" && break
    sleep 0.1
  done
  pid_alive "$1" || { echo "$2 did not start; see $3" >&2; exit 1; }
  echo "$2 started (pid $(cat "$1"), log $3)"
}

# start_gunicorn PIDFILE NAME ARGS...: one gunicorn pool, unless it runs. No control socket:
# gunicorn (25.1+) otherwise opens one at ~/.gunicorn/gunicorn.ctl, the same path for every
# server its user runs, and nothing here uses it (the pid file and signals do). The access
# log leaves out machines' answered heartbeats (dmarket/common/gunicorn_logging.py).
start_gunicorn() {
  local pidfile=$1 name=$2
  shift 2
  if pid_alive "$pidfile"; then
    echo "$name already running (pid $(cat "$pidfile"))"
    return
  fi
  rm -f "$pidfile"  # a crashed server's, naming a process that is gone
  # --graceful-timeout under stop_pidfile's 15 s: the arbiter ends its workers itself (its
  # KILL would reach the arbiter alone, which leads no process group).
  "$DMARKET_HOME/.venv/bin/gunicorn" dmarket.wsgi "$@" --no-control-socket --daemon \
    --graceful-timeout 10 \
    --pid "$pidfile" --logger-class dmarket.common.gunicorn_logging.Logger \
    --access-logfile "$DMARKET_LOG_DIR/access.log" --error-logfile "$DMARKET_LOG_DIR/server.log"
  wait_pid "$pidfile" "$name" "$DMARKET_LOG_DIR/server.log"
}

# Threads (gthread): a worker's heartbeat goes on while one of its threads streams a large
# file, which a sync worker would be killed for after --timeout seconds.
start_gunicorn "$DMARKET_RUN_DIR/server/gunicorn.pid" "web server" --bind "$web_bind" \
  --workers "${DMARKET_WEB_WORKERS:-2}" --worker-class gthread \
  --threads "${DMARKET_WEB_THREADS:-4}" --timeout 120
if [ "$front" = nginx ]; then
  # Sync workers: a third less of gunicorn's CPU a request than gthread's; nginx reads
  # each beat whole first, so a slow client cannot hold one.
  start_gunicorn "$DMARKET_RUN_DIR/server/heartbeat.pid" "heartbeat server" \
    --bind "unix:$DMARKET_RUN_DIR/server/beat.sock" \
    --workers "${DMARKET_BEAT_WORKERS:-2}" --worker-class sync --timeout 30
  pidfile=$DMARKET_RUN_DIR/server/nginx.pid
  if pid_alive "$pidfile"; then
    echo "nginx already running (pid $(cat "$pidfile"))"
  else
    rm -f "$pidfile"
    "$PY" manage.py front_conf --listen "$DMARKET_BIND:$DMARKET_PORT" \
      --web-socket "$DMARKET_RUN_DIR/server/web.sock" \
      --beat-socket "$DMARKET_RUN_DIR/server/beat.sock" --run-dir "$DMARKET_RUN_DIR/server" \
      --log-file "$DMARKET_LOG_DIR/nginx.log" --out "$DMARKET_RUN_DIR/server/nginx.conf"
    "$nginx" -q -e "$DMARKET_LOG_DIR/nginx.log" -p "$DMARKET_RUN_DIR/server" \
      -c "$DMARKET_RUN_DIR/server/nginx.conf" \
      || { echo "nginx did not start; see $DMARKET_LOG_DIR/nginx.log" >&2; exit 1; }
    wait_pid "$pidfile" nginx "$DMARKET_LOG_DIR/nginx.log"
  fi
  answering /api/machines/0/heartbeat/ POST "the heartbeat server"
fi
answering /api/auth/me/ GET "the web server"
echo "web server on http://$DMARKET_BIND:$DMARKET_PORT/ (front: $front)"

