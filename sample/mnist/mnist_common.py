"""What the three MNIST jobs share: where their inputs are, how the data is read, the model.

Shipped to the driver and the executors with the job (`--lib mnist_common.py`).
"""

import glob
import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def locate(path):
    """The directory PATH, or, when no such directory exists, the archive the job was given
    under that alias (`--archive data.tar.gz#data`): Spark unpacks archives into its files
    directory on the driver and into each executor's working directory, so one name works on
    every machine without a shared file system."""
    if os.path.isabs(path) or os.path.exists(path):
        return os.path.abspath(path)
    from pyspark import SparkFiles

    found = SparkFiles.get(path)
    if not os.path.exists(found):
        raise SystemExit(f"{path!r} is neither a directory nor the alias of an archive given "
                         f"to the job (looked in {os.path.dirname(found)})")
    return found


def read_meta(data_dir):
    with open(os.path.join(data_dir, "meta.json")) as f:
        return json.load(f)


def part_files(data_dir, split):
    files = sorted(glob.glob(os.path.join(data_dir, split, "part-*.csv")))
    if not files:
        raise SystemExit(f"no part-*.csv files in {os.path.join(data_dir, split)}")
    return files


def read_csv(files):
    """(pixels as float32 [n, h*w], labels as int64 [n]) from the setup job's CSV files."""
    import numpy as np
    import pandas as pd

    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    return df.iloc[:, 1:].to_numpy(np.float32), df["label"].to_numpy(np.int64)


def split_rdd(sc, data_arg, split, partitions):
    """An RDD of (pixels, label) of a split, read by the executors from their own copy of the
    data (so the driver never holds it all): one task per part file, then `partitions`."""
    data = locate(data_arg)
    names = [os.path.relpath(f, data) for f in part_files(data, split)]

    def rows(name):
        x, y = read_csv([os.path.join(locate(data_arg), name)])
        return zip(x.tolist(), y.tolist())

    return sc.parallelize(names, len(names)).flatMap(rows).repartition(partitions)


def build_model(tf, height, width, classes=10, lr=1e-3):
    """LeNet-like CNN on flat pixel vectors (the Reshape is part of the model, so inference
    feeds the same 1-D arrays as training)."""
    k = 5 if min(height, width) >= 16 else 3
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        layers.InputLayer(input_shape=(height * width,)),
        layers.Reshape((height, width, 1)),
        layers.Conv2D(32, k, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, k, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(classes, activation="softmax"),
    ])
    model.compile(optimizer=tf.keras.optimizers.Adam(lr),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def use_task_gpus():
    """Before TensorFlow loads on an executor: let it see only this task's GPUs, or none.

    Spark gives each task its GPUs (TaskContext.resources()["gpu"]); TensorFlowOnSpark sets
    CUDA_VISIBLE_DEVICES to them for its node's process, where TaskContext is gone. On a
    dmarket worker, the executor's sandbox shows it only its own GPUs, which CUDA numbers
    from 0: DMARKET_EXECUTOR_GPUS lists their addresses in that order. An executor holding no
    GPU gets "" (the CPU, as before). Returns what it set."""
    addresses = None
    try:
        from pyspark import TaskContext

        context = TaskContext.get()
        if context is not None:
            gpu = context.resources().get("gpu")
            addresses = list(gpu.addresses) if gpu is not None else []
    except ImportError:
        pass
    if addresses is None:
        given = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        addresses = [a for a in given.split(",") if a]
    if os.environ.get("DMARKET_CUDA_MAPPED") != "1":
        visible = [a for a in os.environ.get("DMARKET_EXECUTOR_GPUS", "").split(",") if a]
        if visible:
            addresses = [str(visible.index(a)) for a in addresses if a in visible]
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(addresses)
        os.environ["DMARKET_CUDA_MAPPED"] = "1"
    return os.environ["CUDA_VISIBLE_DEVICES"]


def require_keras2(tf):
    """Keras 2's version; fails clearly under Keras 3, whose model.fit breaks under
    MultiWorkerMirroredStrategy."""
    import importlib.metadata

    # tf.keras is a lazy module without __version__: look at where Model comes from.
    if not tf.keras.Model.__module__.startswith("tf_keras"):
        raise RuntimeError(
            f"tf.keras is Keras {importlib.metadata.version('keras')}; "
            "MultiWorkerMirroredStrategy needs Keras 2: install tf-keras and set "
            "TF_USE_LEGACY_KERAS=1 for the driver and the executors")
    return importlib.metadata.version("tf_keras")
