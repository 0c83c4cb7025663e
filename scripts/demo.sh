#!/usr/bin/env bash
# The demo: sets everything up on the embedded defaults (SQLite in ./data unless DATABASE_URL
# is set), starts the central server with its daemons and a local Spark cluster to which this
# machine is shared as the first worker, then, as a new user would with the dmarket client,
# registers and runs the MNIST sample through the market: convert the data, train a CNN with
# TensorFlowOnSpark, test it with Spark. It prints the test accuracy, where the confusion
# matrix is, each job's bill and what the machine's owner earned. Running it again reuses the
# accounts. DEMO_MODE=tensorflow trains in TensorFlowOnSpark's InputMode.TENSORFLOW (faster
# here) instead of InputMode.SPARK; DEMO_EPOCHS sets the epochs (10). Then it serves the
# trained LeNet beside a ResNet50 job on the inference server, both jobs' rates kept within
# 10 % of each other (sample/mnist/serve.sh; DEMO_SERVE=0 leaves it out). DEMO_STORAGE=seaweedfs
# keeps the files on a SeaweedFS store with 4 copies (scripts/start_storage.sh), kills three of
# its four volume servers at the end, fetches every file and result back intact, and restarts
# them (scripts/storage_faults.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./install.sh
source scripts/env.sh

# The operator account owns the cluster's first worker, as the seed's initial master node.
export DJANGO_SUPERUSER_USERNAME=${DJANGO_SUPERUSER_USERNAME:-admin}
admin_password_file=$DMARKET_DATA_DIR/admin.password
[ -s "$admin_password_file" ] || (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(16))' > "$admin_password_file")
export DJANGO_SUPERUSER_PASSWORD=${DJANGO_SUPERUSER_PASSWORD:-$(cat "$admin_password_file")}
export DJANGO_SUPERUSER_EMAIL=${DJANGO_SUPERUSER_EMAIL:-admin@example.org}

if [ "${DEMO_STORAGE:-local}" = seaweedfs ]; then
  echo "== Starting the file store on SeaweedFS (4 copies of every file, scripts/start_storage.sh)"
  scripts/start_storage.sh
  # The server and its daemons read the store's settings from the environment.
  source "${DMARKET_STORAGE_DIR:-$DMARKET_DATA_DIR/seaweedfs}/storage.env"
elif [ "${DEMO_STORAGE:-local}" != local ]; then
  echo "DEMO_STORAGE=$DEMO_STORAGE: give local or seaweedfs" >&2; exit 2
fi

echo "== Starting the central server and the Spark cluster"
scripts/start_central_server.sh
scripts/start_cluster.sh

step() { echo; echo "== $*"; }
# The demo user's client configuration stays in the data directory, not in your home.
export DMARKET_CONFIG=$DMARKET_DATA_DIR/demo-client.json
export DMARKET_SERVER=http://127.0.0.1:$DMARKET_PORT
DMARKET=$DMARKET_HOME/.venv/bin/dmarket

step "Register (or log in) the demo user"
password_file=$DMARKET_DATA_DIR/demo.password
[ -s "$password_file" ] || (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(16))' > "$password_file")
if ! "$DMARKET" whoami >/dev/null 2>&1; then
  "$DMARKET" register --username demo --email demo@example.org --password-stdin < "$password_file" 2>/dev/null \
    || "$DMARKET" login --username demo --password-stdin < "$password_file"
fi
"$DMARKET" whoami
"$DMARKET" credits

step "Prices now"
"$DMARKET" prices

step "The MNIST sample through the market (sample/mnist/run_all.sh)"
export MNIST_WORK=$DMARKET_DATA_DIR/mnist
sample/mnist/run_all.sh --mode "${DEMO_MODE:-spark}" --epochs "${DEMO_EPOCHS:-10}"

if [ "${DEMO_SERVE:-1}" != 0 ]; then
  step "Serving the trained LeNet beside a ResNet50 job (sample/mnist/serve.sh)"
  sample/mnist/serve.sh
fi

if [ "${DEMO_STORAGE:-local}" = seaweedfs ]; then
  step "Three of the four storage servers killed: every file and every result still comes back"
  scripts/storage_faults.sh
fi

step "The demo user's credits and last ledger rows"
"$DMARKET" credits
"$DMARKET" credits history --limit 9

step "What the machine's owner ($DJANGO_SUPERUSER_USERNAME) earned"
owner_token=$(curl -sS -H "Content-Type: application/json" \
  --data "$("$PY" -c 'import json, sys; print(json.dumps({"username": sys.argv[1], "password": sys.argv[2]}))' "$DJANGO_SUPERUSER_USERNAME" "$DJANGO_SUPERUSER_PASSWORD")" \
  "$DMARKET_SERVER/api/auth/login/" | "$PY" -c 'import json, sys; print(json.load(sys.stdin).get("token", ""))')
if [ -n "$owner_token" ]; then
  DMARKET_TOKEN=$owner_token "$DMARKET" machine list
  DMARKET_TOKEN=$owner_token "$DMARKET" credits
else
  echo "(cannot log in as $DJANGO_SUPERUSER_USERNAME: set DJANGO_SUPERUSER_PASSWORD)"
fi

step "The dashboard"
for page in signin/ api/docs/; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' "$DMARKET_SERVER/$page")
  echo "$DMARKET_SERVER/$page answers $code"
  [ "$code" = 200 ] || { echo "the dashboard's /$page does not answer 200" >&2; exit 1; }
done

test_id=$(cat "$DMARKET_DATA_DIR/mnist/test.id")
echo
echo "Dashboard: $DMARKET_SERVER/ (sign in as demo, password in $password_file; doc/dashboard.md)"
echo "Test accuracy and confusion matrix: $DMARKET_DATA_DIR/mnist/test-$test_id/ (accuracy.json, confusion.png)"
echo "Running: central server $DMARKET_SERVER/ (admin at /admin/, user $DJANGO_SUPERUSER_USERNAME,"
echo "password in $admin_password_file), Spark master UI http://127.0.0.1:${DMARKET_SPARK_MASTER_UI_PORT:-8080}/,"
echo "history server http://127.0.0.1:${DMARKET_HISTORY_PORT:-18080}/."
echo "As the demo user: DMARKET_CONFIG=$DMARKET_CONFIG $DMARKET jobs list"
if [ "${DEMO_STORAGE:-local}" = seaweedfs ]; then
  echo "Stop them with: scripts/stop_cluster.sh && scripts/stop_central_server.sh && scripts/stop_storage.sh"
else
  echo "Stop them with: scripts/stop_cluster.sh && scripts/stop_central_server.sh"
fi
