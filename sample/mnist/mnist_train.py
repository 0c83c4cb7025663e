"""MNIST sample job 2/3: distributed training with TensorFlowOnSpark (TF2, Keras 2).

A LeNet-like CNN trained with tf.distribute.MultiWorkerMirroredStrategy on a TensorFlow
cluster of one node per Spark executor (TFCluster.run). Two input modes:

  --mode spark       InputMode.SPARK: the driver reads the CSV with Spark and feeds the
                     partitions to the workers (TFNode.DataFeed) for --epochs epochs.
  --mode tensorflow  InputMode.TENSORFLOW: every worker reads its own shard of the CSV
                     part files directly (the data directory must be visible to it).

The chief saves the model as $DMARKET_OUTPUT_DIR/model/mnist.keras and the per-epoch loss
history as $DMARKET_OUTPUT_DIR/model/history.json.

Needs Keras 2 (pip install tf-keras; TF_USE_LEGACY_KERAS=1 for the driver and, with
--conf spark.executorEnv.TF_USE_LEGACY_KERAS=1, for the executors): Keras 3's model.fit
fails under MultiWorkerMirroredStrategy.

Usage: mnist_train.py --data DIR [--mode spark|tensorflow] [--epochs 10] [--batch-size 64]
                      [--model-dir DIR] [--cluster-size N]
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def build_model(tf, height, width, classes=10, lr=1e-3):
    """LeNet-like CNN on flat pixel vectors (the Reshape is part of the model, so inference
    can feed the same 1-D arrays)."""
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


def require_keras2(tf):
    # tf.keras is a lazy module without __version__: look at where Model comes from
    # (tf_keras.src... for Keras 2, keras.src... for Keras 3).
    origin = tf.keras.Model.__module__
    import importlib.metadata

    version = (importlib.metadata.version("tf_keras") if origin.startswith("tf_keras")
               else importlib.metadata.version("keras"))
    if not origin.startswith("tf_keras"):
        raise RuntimeError(
            f"tf.keras is Keras {version}; MultiWorkerMirroredStrategy needs Keras 2: install "
            "tf-keras and set TF_USE_LEGACY_KERAS=1 (spark.executorEnv.TF_USE_LEGACY_KERAS=1)")
    return version


def read_csv_shard(files):
    import numpy as np
    import pandas as pd

    frames = [pd.read_csv(f) for f in files]
    df = pd.concat(frames, ignore_index=True)
    return df.iloc[:, 1:].to_numpy(np.float32), df["label"].to_numpy(np.int64)


def main_fun(args, ctx):
    """Runs on every executor: one TensorFlow node (chief or worker)."""
    import glob
    import shutil
    import tempfile

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.tf_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.tf_threads)
    keras_version = require_keras2(tf)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    num_workers = ctx.num_workers
    is_chief = ctx.job_name == "chief"
    print(f"node {ctx.job_name}:{ctx.task_index} executor {ctx.executor_id} of {num_workers}, "
          f"TF {tf.__version__}, Keras {keras_version}", flush=True)

    pixels = args.height * args.width
    spec = (tf.TensorSpec([pixels], tf.float32), tf.TensorSpec([], tf.int64))
    tf_feed = None
    if args.mode == "spark":
        from tensorflowonspark import TFNode

        tf_feed = TFNode.DataFeed(ctx.mgr, train_mode=True)

        def rows():
            while not tf_feed.should_stop():
                batch = tf_feed.next_batch(args.batch_size)
                if not batch:
                    return
                for features, label in batch:
                    yield np.asarray(features, np.float32), np.int64(label)

        def dataset_fn(input_context):
            ds = tf.data.Dataset.from_generator(rows, output_signature=spec)
            return ds.shuffle(512).batch(args.batch_size)

        # MWMS is synchronous: every worker must run the same number of steps, and Spark
        # hands partitions to whichever executor is free, so the workers do not get exactly
        # the same number of rows. Stop at steps_fraction of the expected steps.
        steps = int(args.steps_fraction * args.train_rows / (args.batch_size * num_workers))
    else:
        files = sorted(glob.glob(os.path.join(args.data, "train", "part-*.csv")))
        if len(files) >= num_workers:
            x, y = read_csv_shard(files[ctx.executor_id::num_workers])
        else:  # fewer files than workers: every worker reads all and keeps every Nth row
            x, y = read_csv_shard(files)
            x, y = x[ctx.executor_id::num_workers], y[ctx.executor_id::num_workers]
        print(f"shard: {len(y)} rows from {len(files)} files", flush=True)

        def dataset_fn(input_context):
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            return ds.shuffle(len(y), seed=args.seed + ctx.executor_id).repeat().batch(
                args.batch_size)

        steps = int(np.ceil(args.train_rows / (args.batch_size * num_workers)))

    # Per-worker pipelines, each batched with the per-replica batch: no auto-sharding and no
    # rebatching by the strategy.
    dist_ds = strategy.distribute_datasets_from_function(dataset_fn)
    with strategy.scope():
        model = build_model(tf, args.height, args.width, lr=args.learning_rate)
    print(f"{steps} steps per epoch, {args.epochs} epochs, batch {args.batch_size} per worker",
          flush=True)
    t0 = time.time()
    history = model.fit(dist_ds, epochs=args.epochs, steps_per_epoch=steps, verbose=2)
    fit_seconds = time.time() - t0

    if tf_feed is not None:
        # Tell Spark to skip the rest of the feed (and drain what is queued) before exporting.
        tf_feed.terminate()

    # Every worker saves (the strategy expects it); only the chief's copy is kept.
    target = args.model_dir if is_chief else tempfile.mkdtemp(prefix="mnist_worker_model_")
    os.makedirs(target, exist_ok=True)
    model.save(os.path.join(target, "mnist.keras"))
    if is_chief:
        hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        hist.update({"mode": args.mode, "num_workers": num_workers, "epochs": args.epochs,
                     "steps_per_epoch": steps, "batch_size_per_worker": args.batch_size,
                     "global_batch_size": args.batch_size * num_workers,
                     "fit_seconds": round(fit_seconds, 2), "tensorflow": tf.__version__,
                     "keras": keras_version})
        with open(os.path.join(target, "history.json"), "w") as f:
            json.dump(hist, f, indent=1)
        print(f"chief saved the model into {target}", flush=True)
    else:
        shutil.rmtree(target, ignore_errors=True)


def cluster_size(sc):
    conf = sc.getConf()
    if conf.get("spark.executor.instances"):
        return int(conf.get("spark.executor.instances"))
    cores_max = conf.get("spark.cores.max")
    executor_cores = int(conf.get("spark.executor.cores", "1"))
    if cores_max:
        return max(1, int(cores_max) // executor_cores)
    return max(1, sc.defaultParallelism // executor_cores)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="output directory of mnist_data_setup.py")
    p.add_argument("--mode", choices=["spark", "tensorflow"], default="spark")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64, help="per worker")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--steps-fraction", type=float, default=0.9,
                   help="--mode spark: share of the expected steps to run (see main_fun)")
    p.add_argument("--cluster-size", type=int, default=0, help="default: number of executors")
    p.add_argument("--model-dir", default=None)
    p.add_argument("--feed-timeout", type=int, default=120)
    p.add_argument("--reservation-timeout", type=int, default=120)
    p.add_argument("--grace-secs", type=int, default=30)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    out = os.environ.get("DMARKET_OUTPUT_DIR", ".")
    args.data = os.path.abspath(args.data)
    args.model_dir = os.path.abspath(args.model_dir or os.path.join(out, "model"))
    with open(os.path.join(args.data, "meta.json")) as f:
        meta = json.load(f)
    args.height, args.width, args.train_rows = meta["height"], meta["width"], meta["train"]

    from pyspark.sql import SparkSession
    from pyspark.sql.types import FloatType, IntegerType, StructField, StructType
    from tensorflowonspark import TFCluster

    t_start = time.time()
    spark = (SparkSession.builder.appName(f"mnist_train[{args.mode}]")
             # TFoS needs one TF node per executor: do not start before all have registered.
             .config("spark.scheduler.minRegisteredResourcesRatio", "1.0")
             .config("spark.scheduler.maxRegisteredResourcesWaitingTime", "120s")
             # A TF node that failed cannot be retried into a running TF cluster; retries only
             # wait feed_timeout each. Fail the job on the first task failure.
             .config("spark.task.maxFailures", "1")
             .getOrCreate())
    sc = spark.sparkContext
    n = args.cluster_size or cluster_size(sc)
    args.tf_threads = int(sc.getConf().get("spark.executor.cores", "1"))
    deadline = time.time() + 120
    while sc._jsc.sc().getExecutorMemoryStatus().size() - 1 < n and time.time() < deadline:
        time.sleep(1)
    print(f"TF cluster of {n} nodes ({args.mode} mode), "
          f"{sc._jsc.sc().getExecutorMemoryStatus().size() - 1} executors registered", flush=True)
    if os.path.exists(os.path.join(args.model_dir, "history.json")):
        os.remove(os.path.join(args.model_dir, "history.json"))

    if args.mode == "spark":
        pixels = args.height * args.width
        schema = StructType([StructField("label", IntegerType())]
                            + [StructField(f"p{i}", FloatType()) for i in range(pixels)])
        df = spark.read.csv(f"file://{args.data}/train", header=True, schema=schema)
        # Small partitions keep the feed balanced between the workers.
        parts = max(4 * n, args.train_rows // 250)
        rdd = df.rdd.map(lambda r: (list(r[1:]), r[0])).repartition(parts)
        cluster = TFCluster.run(sc, main_fun, args, n, num_ps=0, tensorboard=False,
                                input_mode=TFCluster.InputMode.SPARK, master_node="chief",
                                reservation_timeout=args.reservation_timeout)
        cluster.train(rdd, num_epochs=args.epochs, feed_timeout=args.feed_timeout)
        cluster.shutdown(grace_secs=args.grace_secs, timeout=1800)
    else:
        cluster = TFCluster.run(sc, main_fun, args, n, num_ps=0, tensorboard=False,
                                input_mode=TFCluster.InputMode.TENSORFLOW, master_node="chief",
                                reservation_timeout=args.reservation_timeout)
        cluster.shutdown(timeout=1800)

    history_path = os.path.join(args.model_dir, "history.json")
    if not os.path.exists(history_path):
        raise SystemExit(f"the chief did not write {history_path}")
    with open(history_path) as f:
        hist = json.load(f)
    summary = {"mode": args.mode, "cluster_size": n, "epochs": args.epochs,
               "final_loss": hist["loss"][-1], "final_train_accuracy": hist["accuracy"][-1],
               "fit_seconds": hist["fit_seconds"],
               "job_seconds_in_driver": round(time.time() - t_start, 1)}
    with open(os.path.join(out, "train_summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    spark.stop()


if __name__ == "__main__":
    main()
