"""MNIST sample job 2/3: distributed training with TensorFlowOnSpark (TF2, Keras 2).

A LeNet-like CNN trained with tf.distribute.MultiWorkerMirroredStrategy on a TensorFlow
cluster of one node per Spark executor (TFCluster.run). Two input modes:

  --mode spark       InputMode.SPARK: the driver reads the training split and Spark feeds
                     its partitions to the workers (TFNode.DataFeed) for --epochs epochs.
  --mode tensorflow  InputMode.TENSORFLOW: every worker reads its own shard of the part
                     files from its copy of the data archive.

--data is the setup job's data: a directory, or the alias of its mnist_data.tar.gz given to
this job as an archive (`--archive mnist_data.tar.gz#data`, the default alias).

Every worker saves the trained model (the strategy keeps their weights identical) into its
executor's working directory; the driver then fetches one copy with a small Spark task, so no
file system needs to be shared. It writes into $DMARKET_OUTPUT_DIR (the job's results):

  mnist.keras         the model (Keras 2 format)
  history.json        loss and accuracy per epoch, timings
  model.zip           both, as the test job's archive (`--archive model.zip#model`)
  train_summary.json  what ran and how long it took

Needs Keras 2 (tf-keras with TF_USE_LEGACY_KERAS=1 on the driver and the executors): Keras
3's model.fit fails under MultiWorkerMirroredStrategy.

Usage: mnist_train.py [--data data] [--mode spark|tensorflow] [--epochs 10]
                      [--batch-size 64] [--cluster-size N]
"""

import argparse
import json
import os
import time
import zipfile

from mnist_common import (
    build_model,
    locate,
    part_files,
    read_csv,
    read_meta,
    require_keras2,
    split_rdd,
    use_task_gpus,
)

EXPORT = "mnist_export"


def main_fun(args, ctx):
    """Runs on every executor: one TensorFlow node (chief or worker)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    gpus = use_task_gpus()
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.tf_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.tf_threads)
    keras_version = require_keras2(tf)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    num_workers = ctx.num_workers
    print(f"node {ctx.job_name}:{ctx.task_index} executor {ctx.executor_id} of {num_workers}, "
          f"TF {tf.__version__}, Keras {keras_version}, "
          f"GPUs {tf.config.list_physical_devices('GPU') or 'none'} (CUDA_VISIBLE_DEVICES="
          f"{gpus!r})", flush=True)

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
        files = part_files(locate(args.data), "train")
        if len(files) >= num_workers:
            x, y = read_csv(files[ctx.executor_id::num_workers])
        else:  # fewer files than workers: every worker reads all and keeps every Nth row
            x, y = read_csv(files)
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

    # Every worker saves: the strategy expects it, and their weights are the same, so any
    # copy will do for the driver. history.json goes last: it says the export is complete.
    target = os.path.join(os.getcwd(), EXPORT)
    os.makedirs(target, exist_ok=True)
    model.save(os.path.join(target, "mnist.keras"))
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    hist.update({"mode": args.mode, "num_workers": num_workers, "epochs": args.epochs,
                 "steps_per_epoch": steps, "batch_size_per_worker": args.batch_size,
                 "global_batch_size": args.batch_size * num_workers,
                 "fit_seconds": round(fit_seconds, 2), "tensorflow": tf.__version__,
                 "keras": keras_version})
    with open(os.path.join(target, "history.json.tmp"), "w") as f:
        json.dump(hist, f, indent=1)
    os.replace(os.path.join(target, "history.json.tmp"), os.path.join(target, "history.json"))
    print(f"{ctx.job_name}:{ctx.task_index} saved the model into {target}", flush=True)


def read_export(_):
    """Runs on an executor: the model files a TF node of this application left there."""
    target = os.path.join(os.getcwd(), EXPORT)
    if not os.path.exists(os.path.join(target, "history.json")):
        return []
    files = {}
    for name in ("mnist.keras", "history.json"):
        with open(os.path.join(target, name), "rb") as f:
            files[name] = f.read()
    return [files]


def fetch_export(sc, n, timeout):
    """One copy of the exported model, from whichever executor answers first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = sc.parallelize(range(n), n).mapPartitions(read_export).take(1)
        if found:
            return found[0]
        time.sleep(2)
    raise SystemExit(f"no TF node had exported the model after {timeout} s")


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
    p.add_argument("--data", default="data",
                   help="the setup job's data: a directory or an archive's alias (data)")
    p.add_argument("--mode", choices=["spark", "tensorflow"], default="spark")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64, help="per worker")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--steps-fraction", type=float, default=0.9,
                   help="--mode spark: share of the expected steps to run (see main_fun)")
    p.add_argument("--cluster-size", type=int, default=0, help="default: number of executors")
    p.add_argument("--feed-timeout", type=int, default=120)
    p.add_argument("--reservation-timeout", type=int, default=120)
    p.add_argument("--grace-secs", type=int, default=5)
    p.add_argument("--export-timeout", type=int, default=300)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output", default=os.environ.get("DMARKET_OUTPUT_DIR", "."))
    args = p.parse_args()
    out = os.path.abspath(args.output)

    from pyspark.sql import SparkSession
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
    data = locate(args.data)
    meta = read_meta(data)
    args.height, args.width, args.train_rows = meta["height"], meta["width"], meta["train"]
    n = args.cluster_size or cluster_size(sc)
    args.tf_threads = int(sc.getConf().get("spark.executor.cores", "1"))
    deadline = time.time() + 120
    while sc._jsc.sc().getExecutorMemoryStatus().size() - 1 < n and time.time() < deadline:
        time.sleep(1)
    print(f"TF cluster of {n} nodes ({args.mode} mode), "
          f"{sc._jsc.sc().getExecutorMemoryStatus().size() - 1} executors registered", flush=True)

    if args.mode == "spark":
        # Small partitions keep the feed balanced between the workers.
        rdd = split_rdd(sc, args.data, "train", max(4 * n, args.train_rows // 250))
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

    export = fetch_export(sc, n, args.export_timeout)
    os.makedirs(out, exist_ok=True)
    for name, content in export.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(content)
    with zipfile.ZipFile(os.path.join(out, "model.zip.tmp"), "w") as z:
        for name, content in export.items():
            z.writestr(name, content)
    os.replace(os.path.join(out, "model.zip.tmp"), os.path.join(out, "model.zip"))
    hist = json.loads(export["history.json"])
    summary = {"mode": args.mode, "cluster_size": n, "epochs": args.epochs,
               "dataset": meta["dataset"], "train_rows": args.train_rows,
               "final_loss": hist["loss"][-1], "final_train_accuracy": hist["accuracy"][-1],
               "fit_seconds": hist["fit_seconds"],
               "job_seconds_in_driver": round(time.time() - t_start, 1)}
    with open(os.path.join(out, "train_summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary), flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
