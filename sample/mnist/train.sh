#!/usr/bin/env bash
# MNIST step 2: train the CNN with TensorFlowOnSpark on the setup job's data, as a job.
# Usage: sample/mnist/train.sh [SETUP_JOB_ID] [-- mnist_train.py options, e.g. --mode tensorflow]
# The setup job's mnist_data.tar.gz (dmarket://jobs/ID/results/...) goes to the job as an
# archive that every executor unpacks. MNIST_GPUS=1: each executor holds a GPU (on a machine
# that offers one), which its TensorFlow node uses; without, it trains on the CPU.
set -euo pipefail
source "$(dirname "$0")/common.sh"
given=
if [ $# -gt 0 ] && [ "$1" != -- ]; then given=$1; shift; fi
[ "${1:-}" = -- ] && shift
setup=$(last_job setup "$given")
[ "${MNIST_CODE_STORED:-0}" = 1 ] || store_code
gpus=()
if [ "${MNIST_GPUS:-0}" -gt 0 ]; then gpus=(--gpus-per-executor "$MNIST_GPUS"); fi
submit_and_wait train "${MNIST_TRAIN_CREDITS:-5}" "${gpus[@]}" \
  --archive "$(results_of "$setup" mnist_data.tar.gz)#data" \
  dmarket://mnist/mnist_train.py -- --data data "$@"
cat "$MNIST_WORK/train-$(cat "$MNIST_WORK/train.id")/train_summary.json"; echo
