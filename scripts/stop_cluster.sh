#!/usr/bin/env bash
# Stops what start_cluster.sh started: the worker first, then the history server and master.
set -euo pipefail
source "$(dirname "$0")/env.sh"
for name in worker history master; do
  stop_pidfile "$DMARKET_RUN_DIR/cluster/$name.pid" "$name"
done
