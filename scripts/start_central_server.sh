#!/usr/bin/env bash
# Starts the central server in the background: migrates the database, makes the first
# operator account (DJANGO_SUPERUSER_* variables), then the web server on
# DMARKET_BIND:DMARKET_PORT (scripts/start_web_server.sh: nginx before two gunicorn pools, or
# gunicorn alone) and the market's daemons (launcher, billing, monitor, inference). Does
# nothing for what already runs.
# The Spark cluster is scripts/start_cluster.sh.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$DMARKET_HOME"
[ -x "$PY" ] || { echo "Run ./install.sh first." >&2; exit 1; }

"$PY" manage.py migrate --noinput -v0
"$PY" manage.py collectstatic --noinput -v0
"$PY" manage.py ensure_superuser

"$DMARKET_HOME/scripts/start_web_server.sh"

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
