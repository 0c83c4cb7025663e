#!/usr/bin/env bash
# Stops what start_central_server.sh started.
set -euo pipefail
source "$(dirname "$0")/env.sh"
for pidfile in "$DMARKET_RUN_DIR"/server/*.pid; do
  [ -e "$pidfile" ] || continue
  name=$(basename "$pidfile" .pid)
  [ "$name" = gunicorn ] && name="web server"
  [ "$name" = heartbeat ] && name="heartbeat server"
  stop_pidfile "$pidfile" "$name"
done
