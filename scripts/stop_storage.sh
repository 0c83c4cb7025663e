#!/usr/bin/env bash
# Stops what start_storage.sh started: the master, the volume servers, the filer and its S3
# gateway. --purge also removes the storage directory: every file's bytes and the gateway's key.
#
#   DMARKET_STORAGE_DIR ($DMARKET_DATA_DIR/seaweedfs)
set -euo pipefail
source "$(dirname "$0")/env.sh"
purge=0
case "${1:-}" in
  "") ;;
  --purge) purge=1 ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac
STORAGE=${DMARKET_STORAGE_DIR:-$DMARKET_DATA_DIR/seaweedfs}
RUN=$STORAGE/run

pidfiles=()
for pidfile in "$RUN"/*.pid; do
  [ -e "$pidfile" ] || continue
  if pid_alive "$pidfile"; then
    pidfiles+=("$pidfile")
    kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
  else
    echo "$(basename "$pidfile" .pid) is not running"
    rm -f "$pidfile"
  fi
done
# All at once, then KILL what is left after 3 s: the volume servers stop in a second, but the
# filer waits 15 s (fixed) for its gateway's open stream to it to end before it gives up.
for _ in $(seq 30); do
  alive=0
  for pidfile in "${pidfiles[@]}"; do pid_alive "$pidfile" && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.1
done
for pidfile in "${pidfiles[@]}"; do
  name=$(basename "$pidfile" .pid)
  if pid_alive "$pidfile"; then
    kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    echo "$name killed"
  else
    echo "$name stopped"
  fi
  rm -f "$pidfile"
done
if [ "$purge" = 1 ] && [ -d "$STORAGE" ]; then
  rm -rf "$STORAGE"
  echo "removed $STORAGE"
fi
