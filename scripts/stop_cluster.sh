#!/usr/bin/env bash
# Stops what start_cluster.sh started: the machine agents it ran (each stops its worker
# gracefully; the machines stay registered and show OFFLINE), then the history server and
# the master.
set -euo pipefail
source "$(dirname "$0")/env.sh"
for pidfile in "$DMARKET_DATA_DIR"/agent/machine-*/agent.pid; do
  [ -e "$pidfile" ] || continue
  stop_pidfile "$pidfile" "agent of $(basename "$(dirname "$pidfile")")"
done
for name in worker history master; do
  [ -e "$DMARKET_RUN_DIR/cluster/$name.pid" ] || continue
  stop_pidfile "$DMARKET_RUN_DIR/cluster/$name.pid" "$name"
done
