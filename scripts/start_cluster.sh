#!/usr/bin/env bash
# Starts a local Spark standalone cluster in the background, closed (doc/security.md: Spark
# authentication with the central server's secret, RPC encryption): the master, the history server
# (reading the jobs' event logs under the data directory) and one worker on its own loopback
# address, shared through the machine agent (`dmarket machine add`) as a machine of the
# operator account, like the seed's initial master node. The agent needs the central server,
# so this starts it too if it is not running. Does nothing for what runs already.
#
#   DMARKET_WORKER_ADDRESS (127.0.0.2), DMARKET_WORKER_CORES (all), DMARKET_WORKER_MEMORY_MB (4096)
#   DMARKET_SPARK_MASTER_HOST (127.0.0.1), DMARKET_SPARK_MASTER_PORT (7077),
#   DMARKET_SPARK_MASTER_UI_PORT (8080), DMARKET_HISTORY_PORT (18080)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$DMARKET_HOME"
[ -x "$PY" ] || { echo "Run ./install.sh first." >&2; exit 1; }

MASTER_HOST=${DMARKET_SPARK_MASTER_HOST:-127.0.0.1}
MASTER_PORT=${DMARKET_SPARK_MASTER_PORT:-7077}
MASTER_UI_PORT=${DMARKET_SPARK_MASTER_UI_PORT:-8080}
HISTORY_PORT=${DMARKET_HISTORY_PORT:-18080}
WORKER_ADDRESS=${DMARKET_WORKER_ADDRESS:-127.0.0.2}
WORKER_CORES=${DMARKET_WORKER_CORES:-$(nproc)}
WORKER_MEMORY_MB=${DMARKET_WORKER_MEMORY_MB:-4096}
EVENTS=${DMARKET_EVENT_LOG_DIR:-$DMARKET_DATA_DIR/spark-events}
SPARK_HOME=$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME
export PYSPARK_PYTHON=$PY
RUN=$DMARKET_RUN_DIR/cluster
mkdir -p "$RUN" "$EVENTS" "$DMARKET_DATA_DIR/spark-work"

# start NAME ADDRESS CLASS ARGS...: one Spark daemon, in a session of its own, bound to ADDRESS.
start() {
  local name=$1 address=$2; shift 2
  if pid_alive "$RUN/$name.pid"; then
    echo "$name already running (pid $(cat "$RUN/$name.pid"))"
    return
  fi
  # maxRetries=0: a port in use is an error, not a silent move to the next port. No REST
  # submission server: jobs go through the market. The cluster's security settings (none of
  # them secret; the secret itself comes in _SPARK_AUTH_SECRET, for the master only).
  SPARK_LOCAL_IP=$address SPARK_LOCAL_HOSTNAME=$address SPARK_DAEMON_JAVA_OPTS="-Dspark.port.maxRetries=0 -Dspark.master.rest.enabled=false $DMARKET_SPARK_SECURITY_OPTS" \
    setsid nohup "$SPARK_HOME/bin/spark-class" "$@" >"$DMARKET_LOG_DIR/spark-$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
  echo "$name started (pid $!, log $DMARKET_LOG_DIR/spark-$name.log)"
}


# The central server first: it keeps the cluster's secret (made on first use), which the
# master needs to start closed, and the agent its registration.
scripts/start_central_server.sh
DMARKET_SPARK_SECURITY_OPTS="" _SPARK_AUTH_SECRET=""
# Into a variable first: a failing command inside eval's $(...) would not stop the script,
# and the master would start open.
security=$("$PY" manage.py cluster_secret --shell)
eval "$security"
_SPARK_AUTH_SECRET=$_SPARK_AUTH_SECRET start master "$MASTER_HOST" org.apache.spark.deploy.master.Master \
  --host "$MASTER_HOST" --port "$MASTER_PORT" --webui-port "$MASTER_UI_PORT"
SPARK_HISTORY_OPTS="-Dspark.history.fs.logDirectory=file://$EVENTS -Dspark.history.fs.update.interval=1s -Dspark.history.ui.port=$HISTORY_PORT" \
  start history 127.0.0.1 org.apache.spark.deploy.history.HistoryServer
wait_http "http://$MASTER_HOST:$MASTER_UI_PORT/json/" master "$DMARKET_LOG_DIR/spark-master.log"
wait_http "http://127.0.0.1:$HISTORY_PORT/api/v1/applications" history "$DMARKET_LOG_DIR/spark-history.log"

# The first worker: this machine, shared by the operator through the agent.
export DMARKET_STATE_DIR=$DMARKET_DATA_DIR/agent DMARKET_CONFIG=$DMARKET_DATA_DIR/agent/config.json
DMARKET_TOKEN=$("$PY" manage.py operator_token)
export DMARKET_TOKEN
server=http://127.0.0.1:$DMARKET_PORT
machine=$("$PY" - "$DMARKET_STATE_DIR" "$WORKER_ADDRESS" <<'PY'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("machine-*/machine.json")):
    if json.loads(path.read_text()).get("address") == sys.argv[2]:
        print(path.parent.name.split("-", 1)[1])
PY
)
machine=${machine##*$'\n'}
state=$([ -n "$machine" ] && "$PY" -m dmarket_client --server "$server" machine status "$machine" --json 2>/dev/null \
        | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["state"])' || true)
if [ -n "$state" ] && [ "$state" != REMOVED ] \
   && ! grep -q '"token"' "$DMARKET_STATE_DIR/machine-$machine/machine.json"; then
  # Added by a client older than machine tokens: its agent needs one, so it is shared anew.
  "$PY" -m dmarket_client --server "$server" machine remove "$machine"
  state=REMOVED
fi
if [ -n "$state" ] && [ "$state" != REMOVED ]; then
  "$PY" -m dmarket_client --server "$server" machine run "$machine" --detach
else
  "$PY" -m dmarket_client --server "$server" machine add --cores "$WORKER_CORES" \
    --memory "${WORKER_MEMORY_MB}m" --address "$WORKER_ADDRESS" --name "local worker" --detach
fi
for _ in $(seq 150); do
  "$PY" -c "import sys, urllib.request, json; sys.exit(not any(w['host'] == sys.argv[2] and w['state'] == 'ALIVE' for w in json.load(urllib.request.urlopen(sys.argv[1], timeout=1))['workers']))" \
    "http://$MASTER_HOST:$MASTER_UI_PORT/json/" "$WORKER_ADDRESS" 2>/dev/null && break
  sleep 0.2
done
echo "Spark master spark://$MASTER_HOST:$MASTER_PORT, UI http://$MASTER_HOST:$MASTER_UI_PORT/, history http://127.0.0.1:$HISTORY_PORT/"
echo "worker on $WORKER_ADDRESS: $WORKER_CORES cores, $WORKER_MEMORY_MB MB (agent log: $DMARKET_STATE_DIR/machine-*/agent.log)"
