#!/usr/bin/env bash
# The store's promise, shown with the dmarket client: kills three of the four volume servers of
# the SeaweedFS store that scripts/start_storage.sh runs, then fetches every file of the
# client's user (the latest version of each) and every result of their jobs, each checked
# against the SHA-256 the server recorded, and restarts the killed servers. Exits 1 if any
# did not come back intact. Run as the user whose files to fetch (DMARKET_CONFIG, or
# DMARKET_SERVER and DMARKET_TOKEN); scripts/demo.sh runs it with DEMO_STORAGE=seaweedfs.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$DMARKET_HOME"
STORAGE=${DMARKET_STORAGE_DIR:-$DMARKET_DATA_DIR/seaweedfs}
DMARKET=$DMARKET_HOME/.venv/bin/dmarket
[ -s "$STORAGE/run/volume1.pid" ] || { echo "No SeaweedFS store in $STORAGE: run scripts/start_storage.sh" >&2; exit 1; }

volumes=$(ls "$STORAGE/run" | grep -c '^volume[0-9]*\.pid$')
killed=()
for i in $(seq 2 "$volumes"); do
  pidfile=$STORAGE/run/volume$i.pid
  if pid_alive "$pidfile"; then
    kill -KILL "$(cat "$pidfile")"
    killed+=("volume$i")
  fi
done
echo "killed ${killed[*]:-nothing}; volume1 of $volumes is the only one left"
sleep 1

work=$(mktemp -d)
trap 'rm -rf "$work"; echo "restarting the killed volume servers"; scripts/start_storage.sh >/dev/null' EXIT
"$DMARKET" files ls --json > "$work/files.json"
"$DMARKET" jobs list --limit 500 --json > "$work/jobs.json"
first=$("$PY" -c 'import json, sys; f = json.load(open(sys.argv[1])); print(f[0]["name"] if f else "")' "$work/files.json")
[ -z "$first" ] || "$DMARKET" files where "$first"

failed=0 files=0 results=0
while IFS=$'\t' read -r name version; do
  # `files get` checks the SHA-256 the server recorded before it keeps the file.
  if "$DMARKET" files get "$name@$version" "$work/file" >/dev/null; then
    files=$((files + 1))
  else
    echo "NOT BACK: $name@$version"; failed=1
  fi
  rm -f "$work/file"
done < <("$PY" -c 'import json, sys
for f in json.load(open(sys.argv[1])): print(f["name"], f["version"], sep="\t")' "$work/files.json")
while read -r job; do
  # `jobs results --download` checks each file against the SHA-256 recorded when the job ended.
  if out=$("$DMARKET" jobs results "$job" --download "$work/job-$job" --json); then
    results=$((results + $("$PY" -c 'import json, sys; print(len(json.loads(sys.argv[1])))' "$out")))
  else
    echo "NOT BACK: the results of job $job"; failed=1
  fi
  rm -rf "$work/job-$job"
done < <("$PY" -c 'import json, sys
for j in json.load(open(sys.argv[1])):
    if j["status"] in ("SUCCEEDED", "FAILED", "CANCELLED", "LOST"): print(j["id"])' "$work/jobs.json")

echo "with one volume server of $volumes: $files files and $results result files came back, each with its SHA-256"
exit "$failed"
