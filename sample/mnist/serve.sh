#!/usr/bin/env bash
# Serves the LeNet that train.sh trained beside a ResNet50 job on the market's inference
# server, as a user would with the client: the model and the test images go into the file
# store, two inference jobs run at once, `dmarket infer watch` follows their 10 s rates (the
# market keeps them within 10 % of each other), LeNet's batch size changes half-way, and
# every output is fetched and scored against the test labels.
# Usage: sample/mnist/serve.sh [SETUP_ID TRAIN_ID]   (default: the last jobs of setup/train.sh)
# Settings: LENET_BATCH (8), LENET_NEW_BATCH (16), RESNET_SIDE (224, ResNet50's own; 64 runs
# faster), RESNET_BATCH (2), SET_BATCH_AFTER (s, 45).
# Once both models are loaded the two jobs go at the same rate.
set -euo pipefail
source "$(dirname "$0")/common.sh"
setup=$(last_job setup "${1:-}")
train=$(last_job train "${2:-}")
LENET_BATCH=${LENET_BATCH:-8}
LENET_NEW_BATCH=${LENET_NEW_BATCH:-16}
RESNET_SIDE=${RESNET_SIDE:-224}
RESNET_BATCH=${RESNET_BATCH:-2}
SET_BATCH_AFTER=${SET_BATCH_AFTER:-45}
work=$MNIST_WORK/serve
rm -rf "$work" && mkdir -p "$work"

for f in "$MNIST_WORK/train-$train/mnist.keras" "$MNIST_WORK/setup-$setup/mnist_data.tar.gz"; do
  [ -f "$f" ] || { echo "$f is missing: run setup.sh and train.sh (or run_all.sh) first" >&2; exit 1; }
done
echo "== the trained model (job $train) and the test images (job $setup) into the file store"
"$DMARKET" files put "$MNIST_WORK/train-$train/mnist.keras" models/lenet.keras
tar -xzf "$MNIST_WORK/setup-$setup/mnist_data.tar.gz" -C "$work" test
"$DMARKET" files put-many "$work/test/*.csv" mnist/test
inputs=$(cat "$work"/test/*.csv | grep -c -v '^label')

echo "== two inference jobs at once: LeNet over the $inputs test images, ResNet50 over as many"
echo "   synthetic ${RESNET_SIDE}x${RESNET_SIDE} images (random weights: no machine here can download them)"
lenet=$("$DMARKET" --json infer submit --name "lenet mnist" --model models/lenet.keras \
        --data dmarket://mnist/test --batch-size "$LENET_BATCH" --max-credits 1 | json_field id)
resnet=$("$DMARKET" --json infer submit --name resnet50 --model "resnet50:$RESNET_SIDE" \
         --data "synthetic:$inputs" --batch-size "$RESNET_BATCH" --max-credits 2 | json_field id)
echo "   LeNet: inference job $lenet; ResNet50: inference job $resnet"
( sleep "$SET_BATCH_AFTER"
  echo "== $SET_BATCH_AFTER s in: LeNet's batch size $LENET_BATCH -> $LENET_NEW_BATCH, and which machines run what"
  "$DMARKET" infer set-batch "$lenet" "$LENET_NEW_BATCH"
  "$DMARKET" cluster status ) &
setter=$!
# Not left behind if the watch fails.
trap 'pkill -P "$setter" 2>/dev/null || true; kill "$setter" 2>/dev/null || true' EXIT
echo "== following both (each line: job, state, outputs, batch size, 10 s rate; max/min of the rates)"
"$DMARKET" infer watch "$lenet" "$resnet" --interval 2
pkill -P "$setter" 2>/dev/null || true; kill "$setter" 2>/dev/null || true

echo
echo "== statistics (query time in ms: a query's time is its batch's)"
"$DMARKET" infer stats "$lenet" "$resnet"
echo
"$DMARKET" infer results "$lenet" --download "$work/lenet-outputs.jsonl"
"$DMARKET" infer results "$resnet" --download "$work/resnet50-outputs.jsonl"
"$PY" - "$work" <<'PY'
import csv, glob, json, os, sys
from collections import Counter

work = sys.argv[1]
labels = {}
for path in sorted(glob.glob(os.path.join(work, "test", "*.csv"))):
    with open(path) as f:
        for row, record in enumerate(csv.DictReader(f)):
            labels[f"mnist/test/{os.path.basename(path)}:{row}"] = int(float(record["label"]))
outputs = [json.loads(line) for line in open(os.path.join(work, "lenet-outputs.jsonl"))]
names = Counter(o["name"] for o in outputs)
right = sum(max(range(10), key=o["output"].__getitem__) == labels[o["name"]] for o in outputs)
print(f"LeNet served: {len(outputs)} outputs for {len(labels)} test images, "
      f"{sum(1 for n in names.values() if n > 1)} inputs with more than one output; "
      f"accuracy {right / len(outputs):.4f} (the test job's: see accuracy.json)")
PY
echo
echo "== the bills (each inference job is billed as a job is: its own run, held and charged)"
for id in "$lenet" "$resnet"; do
  "$DMARKET" --json infer show "$id" | "$PY" -c 'import json, sys
j = json.load(sys.stdin)
print("  inference job %-4s %-10s %-9s %5s outputs  cost %s of %s credits (settled %s)" % (
    j["id"], j["name"][:10], j["status"], j["outputs"], j["cost"], j["max_credits"],
    j["settled_at"]))'
done
echo "(outputs in $work/*-outputs.jsonl)"
