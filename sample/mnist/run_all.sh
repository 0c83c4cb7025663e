#!/usr/bin/env bash
# The three MNIST jobs in a row through the market: setup, train, test; then their bills.
# Usage: sample/mnist/run_all.sh [--mode spark|tensorflow] [--epochs N] [--dataset NAME]
set -euo pipefail
source "$(dirname "$0")/common.sh"
setup_args=() train_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --dataset) setup_args+=(--dataset "$2"); shift 2 ;;
    --mode|--epochs|--batch-size) train_args+=("$1" "$2"); shift 2 ;;
    *) echo "usage: $0 [--mode spark|tensorflow] [--epochs N] [--batch-size N] [--dataset mnist5k|digits|mnist]" >&2; exit 2 ;;
  esac
done
store_code
export MNIST_CODE_STORED=1
"$MNIST_DIR/setup.sh" "${setup_args[@]}"
"$MNIST_DIR/train.sh" -- "${train_args[@]}"
"$MNIST_DIR/test.sh"
echo
echo "== the bills"
for step in setup train test; do
  id=$(cat "$MNIST_WORK/$step.id")
  "$DMARKET" --json jobs show "$id" | "$PY" -c 'import json, sys
from datetime import datetime
j = json.load(sys.stdin)
took = (datetime.fromisoformat(j["finished_at"]) - datetime.fromisoformat(j["started_at"])).total_seconds()
print("  %-6s job %-4s %-9s %6.1f s  cost %s credits" % (sys.argv[1], j["id"], j["status"], took, j["cost"]))' "$step"
done
