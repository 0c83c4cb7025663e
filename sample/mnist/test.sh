#!/usr/bin/env bash
# MNIST step 3: classify the test split with the trained model (Spark's predict_batch_udf).
# Usage: sample/mnist/test.sh [SETUP_JOB_ID TRAIN_JOB_ID] [-- mnist_test.py options]
# The setup job's data and the train job's model.zip go to the job as archives, named as
# dmarket://jobs/ID/results/... files.
set -euo pipefail
source "$(dirname "$0")/common.sh"
given_setup= given_train=
if [ $# -ge 2 ] && [ "$1" != -- ]; then given_setup=$1 given_train=$2; shift 2; fi
[ "${1:-}" = -- ] && shift
setup=$(last_job setup "$given_setup")
train=$(last_job train "$given_train")
[ "${MNIST_CODE_STORED:-0}" = 1 ] || store_code
submit_and_wait test "${MNIST_TEST_CREDITS:-2}" \
  --archive "$(results_of "$setup" mnist_data.tar.gz)#data" \
  --archive "$(results_of "$train" model.zip)#model" \
  dmarket://mnist/mnist_test.py -- --data data --model model "$@"
out=$MNIST_WORK/test-$(cat "$MNIST_WORK/test.id")
"$PY" -c 'import json, sys
r = json.load(open(sys.argv[1]))
print("test accuracy: %.2f %% (%d of %d images)" % (100 * r["accuracy"], r["correct"], r["total"]))' "$out/accuracy.json"
echo "confusion matrix and loss curve: $out/confusion.png"
