#!/usr/bin/env bash
# Starts the central server in the background: migrates the database, makes the first
# operator account (DJANGO_SUPERUSER_* variables), then the web server on
# DMARKET_BIND:DMARKET_PORT (nginx before two gunicorn pools, or gunicorn alone) and the
# market's daemons (launcher, billing, monitor, inference). Does nothing for what already runs.
# The Spark cluster is scripts/start_cluster.sh.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$DMARKET_HOME"
[ -x "$PY" ] || { echo "Run ./install.sh first." >&2; exit 1; }

"$PY" manage.py migrate --noinput -v0
"$PY" manage.py collectstatic --noinput -v0
"$PY" manage.py ensure_superuser

mkdir -p "$DMARKET_RUN_DIR/server"
# Only the server's user may reach the pools' sockets (dmarket/common/front.py).
chmod 700 "$DMARKET_RUN_DIR/server"
url="http://127.0.0.1:$DMARKET_PORT/api/schema/"
[ "$DMARKET_BIND" = 127.0.0.1 ] || [ "$DMARKET_BIND" = 0.0.0.0 ] || url="http://$DMARKET_BIND:$DMARKET_PORT/api/schema/"

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
   || { [ "$front" = off ] && pid_alive "$DMARKET_RUN_DIR/server/nginx.pid"; }; then
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
  "$DMARKET_HOME/.venv/bin/gunicorn" dmarket.wsgi "$@" --no-control-socket --daemon \
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
  # The heartbeat pool answers through the front (401 without a token), not nginx's 502.
  beat_url=${url%/api/schema/}/api/machines/0/heartbeat/
  for _ in $(seq 100); do
    code=$("$PY" -c "
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(urllib.request.Request(sys.argv[1], b'{}', method='POST'), timeout=2)
except urllib.error.HTTPError as e:
    print(e.code)
except OSError:
    print(0)" "$beat_url")
    [ "$code" = 401 ] && break
    sleep 0.2
  done
  [ "$code" = 401 ] || { echo "the heartbeat server does not answer through nginx ($code); see $DMARKET_LOG_DIR/server.log and nginx.log" >&2; exit 1; }
fi
wait_http "$url" "the web server" "$DMARKET_LOG_DIR/server.log" 20
echo "web server on http://$DMARKET_BIND:$DMARKET_PORT/ (front: $front)"

# The market's daemons: management commands run with --loop, one pid file each. The launcher
# runs drivers on this host; the billing poller bills executors from the history server; the
# monitor marks machines offline when their heartbeats stop or the master loses their worker.
DAEMONS=(launcher billing monitor inference)
for daemon in "${DAEMONS[@]}"; do
  pidfile=$DMARKET_RUN_DIR/server/$daemon.pid
  if pid_alive "$pidfile"; then
    echo "$daemon already running (pid $(cat "$pidfile"))"
    continue
  fi
  nohup "$PY" manage.py "$daemon" --loop >>"$DMARKET_LOG_DIR/$daemon.log" 2>&1 &
  echo $! > "$pidfile"
  echo "$daemon started (pid $!, log $DMARKET_LOG_DIR/$daemon.log)"
done
