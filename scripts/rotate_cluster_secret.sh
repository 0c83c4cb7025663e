#!/usr/bin/env bash
# Rotates the Spark cluster's secret: the central server makes a new one, the master restarts
# with it, and each machine's agent restarts its worker with it at its next heartbeat (within
# DMARKET_HEARTBEAT_INTERVAL). Applications running on the old master end: their jobs fail
# (or, for the inference server, restart), so rotate when the market is quiet.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$DMARKET_HOME"
"$PY" manage.py cluster_secret --rotate
stop_pidfile "$DMARKET_RUN_DIR/cluster/master.pid" master
exec scripts/start_cluster.sh
