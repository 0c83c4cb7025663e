"""The baseline: the same CNN trained by one plain Keras process on the same data, without
Spark or TensorFlowOnSpark. Prints the fit time and the test accuracy as JSON.

Usage: local_keras.py --data DIR [--epochs 10] [--batch-size 128] [--threads N]
(DIR: mnist_data.tar.gz of the setup job, unpacked.)
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist_common import build_model, part_files, read_csv, read_meta, require_keras2


def main():
    t_start = time.time()
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()

    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras_version = require_keras2(tf)
    meta = read_meta(args.data)
    x, y = read_csv(part_files(args.data, "train"))
    xt, yt = read_csv(part_files(args.data, "test"))
    tf.keras.utils.set_random_seed(42)
    model = build_model(tf, meta["height"], meta["width"])
    t0 = time.time()
    h = model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, shuffle=True, verbose=2)
    fit_seconds = time.time() - t0
    _, accuracy = model.evaluate(xt, yt, verbose=0)
    print(json.dumps({"tf": tf.__version__, "keras": keras_version, "train_rows": len(y),
                      "test_rows": len(yt), "epochs": args.epochs,
                      "batch_size": args.batch_size, "threads": args.threads or "default",
                      "fit_seconds": round(fit_seconds, 1),
                      "test_accuracy": round(float(accuracy), 4),
                      "final_loss": round(h.history["loss"][-1], 4),
                      "script_seconds": round(time.time() - t_start, 1)}))


if __name__ == "__main__":
    main()
