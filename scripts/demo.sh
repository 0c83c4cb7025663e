#!/usr/bin/env bash
# The demo: sets everything up on the embedded defaults (SQLite in ./data unless DATABASE_URL
# is set), starts the central server, and walks through the market with curl as a new user
# would: register, share a machine, submit a job, see the hold, cancel, see it released.
# Running it again reuses the demo account and machine.
set -euo pipefail
cd "$(dirname "$0")/.."
./install.sh
source scripts/env.sh
scripts/start_central_server.sh

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

step "Share this machine"
api GET /machines/; expect 200
machine=$(field results.0.id <<<"$BODY" 2>/dev/null || true)
if [ -z "$machine" ]; then
  api POST /machines/ '{"name": "demo-machine", "cores": 2, "memory_mb": 2048, "machine_type": "cpu", "address": "127.0.0.1"}'
  expect 201
  machine=$(field id <<<"$BODY")
fi
api POST "/machines/$machine/heartbeat/" '{}'; expect 200
pretty <<<"$BODY"

step "Prices now"
api GET /prices/; expect 200
pretty <<<"$BODY"

step "Submit a job (sample/pi/pi.py, at most 5 credits)"
api POST /jobs/ "{\"name\": \"pi\", \"entry_file\": \"$PWD/sample/pi/pi.py\", \"app_params\": \"4\", \"cores\": 2, \"executor_memory_mb\": 512, \"max_credits\": \"5\", \"submission_id\": \"demo-$(date +%s)\"}"
expect 201
pretty <<<"$BODY"
job_id=$(field id <<<"$BODY")

step "Credits with the job's hold"
api GET /credits/; expect 200
pretty <<<"$BODY"

step "Cancel job $job_id"
api POST "/jobs/$job_id/cancel/"; expect 200
echo "job $job_id is $(field status <<<"$BODY")"

step "Credits after the hold is released"
api GET /credits/; expect 200
pretty <<<"$BODY"

step "The last ledger rows"
api GET "/credits/transactions/?page_size=3"; expect 200
pretty <<<"$BODY"

echo
echo "The server keeps running at http://127.0.0.1:$DMARKET_PORT/ (API under /api/, schema at /api/schema/)."
echo "Your demo token: $TOKEN"
echo "Stop it with: scripts/stop_central_server.sh"
