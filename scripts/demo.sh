#!/usr/bin/env bash
# The demo: sets everything up on the embedded defaults (SQLite in ./data unless DATABASE_URL
# is set), starts a local Spark cluster and the central server with its daemons, and walks
# through the market with curl as a new user would: register, look at the prices, submit a
# PySpark job, follow its log, fetch its result, see its bill and what the machine's owner
# earned. Running it again reuses the accounts.
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

echo "== Starting the central server and the Spark cluster"
scripts/start_central_server.sh
scripts/start_cluster.sh

API=http://127.0.0.1:$DMARKET_PORT/api
step() { echo; echo "== $*"; }
# api METHOD PATH [JSON]: sets BODY and STATUS (no subshell, so that both survive).
api() {
  local method=$1 path=$2 data=${3:-} out
  local args=(-sS -X "$method" -H "Content-Type: application/json" -w '\n%{http_code}')
  [ -n "${TOKEN:-}" ] && args+=(-H "Authorization: Token $TOKEN")
  [ -n "$data" ] && args+=(--data "$data")
  out=$(curl "${args[@]}" "$API$path")
  STATUS=${out##*$'\n'}
  BODY=${out%$'\n'*}
}
# expect CODE: stop with the server's message unless the last call answered CODE.
expect() { [ "$STATUS" = "$1" ] || { echo "unexpected $STATUS from the server: $BODY" >&2; exit 1; }; }
field() { "$PY" -c 'import json, sys; d = json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d[int(k)] if k.isdigit() else d[k]
print(d)' "$1"; }
pretty() { "$PY" -m json.tool; }

step "Register (or log in) the demo user"
password_file=$DMARKET_DATA_DIR/demo.password
[ -s "$password_file" ] || (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(16))' > "$password_file")
password=$(cat "$password_file")
api POST /auth/register/ "{\"username\": \"demo\", \"password\": \"$password\", \"email\": \"demo@example.org\"}"
if [ "$STATUS" = 201 ]; then
  echo "registered demo (password in $password_file)"
else
  api POST /auth/login/ "{\"username\": \"demo\", \"password\": \"$password\"}"
  expect 200
  echo "logged in as demo (password in $password_file)"
fi
TOKEN=$(field token <<<"$BODY")

step "Prices now"
api GET /prices/; expect 200
pretty <<<"$BODY"

step "Submit a PySpark job: sample/pi/pi.py on 2 cores, at most 5 credits"
api POST /jobs/ "{\"name\": \"pi\", \"entry_file\": \"$PWD/sample/pi/pi.py\", \"app_params\": \"4\", \"cores\": 2, \"executor_memory_mb\": 512, \"max_credits\": \"5\", \"submission_id\": \"demo-$(date +%s)\"}"
expect 201
job_id=$(field id <<<"$BODY")
echo "job $job_id is $(field status <<<"$BODY")"
api GET /credits/; expect 200
echo "credits: $(field available <<<"$BODY") available, $(field held <<<"$BODY") held for the job"

step "Following job $job_id's driver log"
offset=0
while true; do
  api GET "/jobs/$job_id/log/?from=$offset"; expect 200
  "$PY" -c 'import json, sys
for line in json.load(sys.stdin)["lines"]:
    if not any(w in line for w in (" WARN ", " INFO ", "log4j")): print("  | " + line)' <<<"$BODY"
  offset=$(field next <<<"$BODY")
  [ "$(field ended <<<"$BODY")" = True ] && break
  sleep 1
done

step "Waiting for the bill"
for _ in $(seq 60); do
  api GET "/jobs/$job_id/"; expect 200
  [ "$(field settled_at <<<"$BODY")" != None ] && break
  sleep 0.5
done
job=$BODY
echo "job $job_id: $(field status <<<"$job") ($(field status_reason <<<"$job")), cost $(field cost <<<"$job") credits"
[ "$(field status <<<"$job")" = SUCCEEDED ] || { echo "the job did not succeed; see its log above" >&2; exit 1; }

step "Its executors: where they ran and for how long"
api GET "/jobs/$job_id/executors/"; expect 200
"$PY" -c 'import json, sys
for e in json.load(sys.stdin):
    print("  executor %(id)s on %(host)s (machine %(machine)s): %(cores)s core(s), %(core_seconds)s core-seconds" % e)' <<<"$BODY"

step "Its results"
api GET "/jobs/$job_id/results/"; expect 200
pretty <<<"$BODY"
curl -sS -H "Authorization: Token $TOKEN" "$API/jobs/$job_id/results/result.json"; echo

step "The demo user's credits and last ledger rows"
api GET /credits/; expect 200
pretty <<<"$BODY"
api GET "/credits/transactions/?page_size=4"; expect 200
"$PY" -c 'import json, sys
for r in json.load(sys.stdin)["results"]:
    print("  %(kind)-8s %(amount)12s held %(held)12s  %(memo)s" % r)' <<<"$BODY"

step "What the machine's owner ($DJANGO_SUPERUSER_USERNAME) earned"
TOKEN=
api POST /auth/login/ "{\"username\": \"$DJANGO_SUPERUSER_USERNAME\", \"password\": \"$DJANGO_SUPERUSER_PASSWORD\"}"
if [ "$STATUS" = 200 ]; then
  TOKEN=$(field token <<<"$BODY")
  api GET /credits/; expect 200
  echo "earned $(field earned <<<"$BODY") credits in all (balance $(field balance <<<"$BODY"))"
else
  echo "(cannot log in as $DJANGO_SUPERUSER_USERNAME: set DJANGO_SUPERUSER_PASSWORD)"
fi

echo
echo "Running: central server http://127.0.0.1:$DMARKET_PORT/ (admin at /admin/, user $DJANGO_SUPERUSER_USERNAME,"
echo "password in $admin_password_file), Spark master UI http://127.0.0.1:${DMARKET_SPARK_MASTER_UI_PORT:-8080}/,"
echo "history server http://127.0.0.1:${DMARKET_HISTORY_PORT:-18080}/."
echo "Stop them with: scripts/stop_cluster.sh && scripts/stop_central_server.sh"
