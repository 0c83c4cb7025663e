# Sourced by the scripts: where dmarket keeps its things, from the environment or defaults.
DMARKET_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DMARKET_DATA_DIR=${DMARKET_DATA_DIR:-$DMARKET_HOME/data}
export DMARKET_PORT=${DMARKET_PORT:-8000}
export DMARKET_BIND=${DMARKET_BIND:-127.0.0.1}
export DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-dmarket.settings}
DMARKET_RUN_DIR=$DMARKET_DATA_DIR/run
DMARKET_LOG_DIR=$DMARKET_DATA_DIR/log
PY=$DMARKET_HOME/.venv/bin/python
mkdir -p "$DMARKET_RUN_DIR" "$DMARKET_LOG_DIR"

# pid_alive FILE: the process named in FILE is running. A zombie is not: a daemon that died
# stays one until an init reaps it, which some (a container's) do late.
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

# wait_http URL NAME LOG [SECONDS]: until URL answers, at most SECONDS (60); else says which
# log to read and fails.
wait_http() {
  for _ in $(seq $((${4:-60} * 5))); do
    "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "$2 did not answer at $1; see $3" >&2
  return 1
}

# stop_pidfile FILE NAME: TERM the process, wait up to 15 s, then KILL it.
stop_pidfile() {
  local file=$1 name=$2 pid
  if ! pid_alive "$file"; then
    rm -f "$file"
    echo "$name is not running"
    return 0
  fi
  pid=$(cat "$file")
  # The whole process group where it leads one (a Spark worker and its executors).
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
  fi
  rm -f "$file"
  echo "$name stopped"
}
