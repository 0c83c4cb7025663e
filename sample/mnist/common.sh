# Sourced by the MNIST scripts: the dmarket client, a work directory, store_code and
# submit_and_wait. They talk to the server you logged in to (`dmarket login`), as any user's
# scripts would. The jobs' code lives in your file store under mnist/ and the jobs name it,
# and each other's results, as dmarket:// files: no machine needs this directory.
MNIST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$MNIST_DIR/../.." && pwd)
if [ -z "${DMARKET:-}" ]; then
  if [ -x "$ROOT/.venv/bin/dmarket" ]; then DMARKET=$ROOT/.venv/bin/dmarket; else DMARKET=dmarket; fi
fi
PY=${PY:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3)}
# Where the scripts keep what they fetch from the jobs' results, and the ids of the last jobs.
export MNIST_WORK=${MNIST_WORK:-$ROOT/data/mnist}
mkdir -p "$MNIST_WORK"
# What each job may use; the cap is held from your credits while it runs.
MNIST_CORES=${MNIST_CORES:-2}
MNIST_MEMORY=${MNIST_MEMORY:-1g}

json_field() { "$PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# store_code: uploads the jobs' code into the store as mnist/*.py (a new version of each).
store_code() {
  echo "== the jobs' code into the file store (mnist/)"
  "$DMARKET" files put-many "$MNIST_DIR/*.py" mnist
}

# submit_and_wait STEP MAX_CREDITS SUBMIT-ARGS...: submits a job, follows it with a progress
# line until it is billed, prints its bill and results, fetches the results into
# $MNIST_WORK/STEP-ID and records the id in $MNIST_WORK/STEP.id. Fails unless it succeeded.
submit_and_wait() {
  local step=$1 cap=$2 job id
  shift 2
  job=$("$DMARKET" --json jobs submit --name "mnist $step" --cores "$MNIST_CORES" \
        --executor-memory "$MNIST_MEMORY" --max-credits "$cap" \
        --lib dmarket://mnist/mnist_common.py "$@")
  id=$(json_field id <<<"$job")
  echo "== mnist $step: job $id submitted (at most $cap credits)"
  if ! "$DMARKET" jobs watch "$id"; then
    echo "mnist $step: job $id did not succeed; the end of its log:" >&2
    "$DMARKET" jobs log "$id" 2>/dev/null | grep -v -E " (INFO|WARN) " | tail -n 30 >&2
    return 1
  fi
  echo "-- its executors"
  "$DMARKET" jobs executors "$id"
  echo "-- its results"
  "$DMARKET" jobs results "$id"
  rm -rf "$MNIST_WORK/$step-$id"
  "$DMARKET" jobs results "$id" --download "$MNIST_WORK/$step-$id" >/dev/null
  echo "$id" > "$MNIST_WORK/$step.id"
  echo "(results fetched into $MNIST_WORK/$step-$id)"
}

# results_of JOB PATH: a result of a job, as a job names it.
results_of() { echo "dmarket://jobs/$1/results/$2"; }

# last_job STEP: the id of the last job of STEP that these scripts ran, or the given one.
last_job() {
  local step=$1 given=${2:-}
  if [ -n "$given" ]; then echo "$given"; return; fi
  [ -s "$MNIST_WORK/$step.id" ] || { echo "no $step job yet: run $step.sh first" >&2; return 1; }
  cat "$MNIST_WORK/$step.id"
}
