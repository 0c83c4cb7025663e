#!/usr/bin/env bash
# MNIST step 1: convert the images into the cluster's format, as a job on the market.
# Usage: sample/mnist/setup.sh [mnist_data_setup.py options, e.g. --dataset digits]
# --dataset mnist uses what download.sh fetched (sample/mnist/mnist-raw.tar.gz), put into
# the store as mnist/mnist-raw.tar.gz.
set -euo pipefail
source "$(dirname "$0")/common.sh"
archive=()
for arg in "$@"; do
  if [ "$arg" = mnist ]; then
    [ -f "$MNIST_DIR/mnist-raw.tar.gz" ] || { echo "run sample/mnist/download.sh first" >&2; exit 1; }
    "$DMARKET" files put "$MNIST_DIR/mnist-raw.tar.gz" mnist/mnist-raw.tar.gz
    archive=(--archive "dmarket://mnist/mnist-raw.tar.gz#raw")
  fi
done
[ "${MNIST_CODE_STORED:-0}" = 1 ] || store_code
submit_and_wait setup "${MNIST_SETUP_CREDITS:-2}" "${archive[@]}" \
  dmarket://mnist/mnist_data_setup.py -- "$@"
