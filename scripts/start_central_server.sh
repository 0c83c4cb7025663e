#!/usr/bin/env bash
# Starts the central server in the background: migrates the database, makes the first
# operator account (DJANGO_SUPERUSER_* variables), then gunicorn on DMARKET_BIND:DMARKET_PORT
# and the market's daemons (launcher, billing). Does nothing for what already runs.
# The Spark cluster is scripts/start_cluster.sh.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$DMARKET_HOME"
[ -x "$PY" ] || { echo "Run ./install.sh first." >&2; exit 1; }

"$PY" manage.py migrate --noinput -v0
"$PY" manage.py collectstatic --noinput -v0
"$PY" manage.py ensure_superuser

mkdir -p "$DMARKET_RUN_DIR/server"
pidfile=$DMARKET_RUN_DIR/server/gunicorn.pid
if pid_alive "$pidfile"; then
  echo "web server already running (pid $(cat "$pidfile"))"
else
  # Threads (gthread): a worker's heartbeat goes on while one of its threads streams a large
  # file, which a sync worker would be killed for after --timeout seconds. No control socket:
  # gunicorn (25.1+) otherwise opens one at ~/.gunicorn/gunicorn.ctl, the same path for every
  # server its user runs, and nothing here uses it (the pid file and signals do). The access
  # log leaves out machines' answered heartbeats (dmarket/common/gunicorn_logging.py).
  "$DMARKET_HOME/.venv/bin/gunicorn" dmarket.wsgi \
    --bind "$DMARKET_BIND:$DMARKET_PORT" --workers "${DMARKET_WEB_WORKERS:-2}" \
    --worker-class gthread --threads "${DMARKET_WEB_THREADS:-4}" --timeout 120 \
    --no-control-socket --daemon --pid "$pidfile" \
    --logger-class dmarket.common.gunicorn_logging.Logger \
    --access-logfile "$DMARKET_LOG_DIR/access.log" --error-logfile "$DMARKET_LOG_DIR/server.log"
  url="http://127.0.0.1:$DMARKET_PORT/api/schema/"
  [ "$DMARKET_BIND" = 127.0.0.1 ] || [ "$DMARKET_BIND" = 0.0.0.0 ] || url="http://$DMARKET_BIND:$DMARKET_PORT/api/schema/"
  for _ in $(seq 100); do
    "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url" 2>/dev/null && break
    sleep 0.2
  done
  pid_alive "$pidfile" || { echo "the web server did not start; see $DMARKET_LOG_DIR/server.log" >&2; exit 1; }
  echo "web server on http://$DMARKET_BIND:$DMARKET_PORT/ (pid $(cat "$pidfile"), log $DMARKET_LOG_DIR/server.log)"
fi

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
