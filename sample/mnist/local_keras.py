"""Baseline: the same CNN trained by a plain single-process Keras script on the same CSVs
(no Spark, no TFoS). Usage: local_keras.py --data DIR [--epochs 10] [--batch-size 128]
[--threads N]. Prints fit time and test accuracy."""
import argparse
import glob
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
t_start = time.time()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_train import build_model, read_csv_shard, require_keras2  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--batch-size", type=int, default=128)
p.add_argument("--threads", type=int, default=0)
args = p.parse_args()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
kv = require_keras2(tf)
meta = json.load(open(os.path.join(args.data, "meta.json")))
x, y = read_csv_shard(sorted(glob.glob(os.path.join(args.data, "train", "part-*.csv"))))
xt, yt = read_csv_shard(sorted(glob.glob(os.path.join(args.data, "test", "part-*.csv"))))
tf.keras.utils.set_random_seed(42)
model = build_model(tf, meta["height"], meta["width"])
t0 = time.time()
h = model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, shuffle=True, verbose=2)
fit_s = time.time() - t0
loss, acc = model.evaluate(xt, yt, verbose=0)
print(json.dumps({"tf": tf.__version__, "keras": kv, "train_rows": len(y), "test_rows": len(yt),
                  "epochs": args.epochs, "batch_size": args.batch_size,
                  "threads": args.threads or "default",
                  "fit_seconds": round(fit_s, 1), "test_accuracy": round(float(acc), 4),
                  "final_loss": round(h.history["loss"][-1], 4),
                  "script_seconds": round(time.time() - t_start, 1)}))
