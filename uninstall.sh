#!/usr/bin/env bash
# Removes what install.sh made (.venv) after stopping the server and cluster. The data
# directory (database, job logs and results, the secret key) is deleted only if you say so.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/env.sh
[ -x scripts/stop_cluster.sh ] && scripts/stop_cluster.sh || true
scripts/stop_central_server.sh || true
rm -rf .venv
echo "removed .venv"
if [ -d "$DMARKET_DATA_DIR" ]; then
  answer=n
  if [ "${1:-}" = "--delete-data" ]; then
    answer=y
  elif [ -t 0 ]; then
    read -r -p "Delete the data directory $DMARKET_DATA_DIR (database, job results, secret key)? [y/N] " answer
  fi
  case "$answer" in
    y|Y|yes) rm -rf "$DMARKET_DATA_DIR"; echo "removed $DMARKET_DATA_DIR" ;;
    *) echo "kept $DMARKET_DATA_DIR" ;;
  esac
fi
