"""MNIST sample job 3/3: batch inference with Spark over the test split.

Loads the model that mnist_train.py exported (mnist.keras, Keras 2) in the executors through
pyspark.ml.functions.predict_batch_udf, classifies every test image, and writes into
$DMARKET_OUTPUT_DIR (the job's results):
  accuracy.json    accuracy, counts, per-class recall
  predictions.csv  label, prediction, confidence for every test image
  confusion.png    the confusion matrix and the training loss curve (from history.json)

--data and --model are directories, or the aliases of the archives given to the job:
`--archive mnist_data.tar.gz#data --archive model.zip#model` (the defaults).

Usage: mnist_test.py [--data data] [--model model] [--batch-size 256]
"""

import argparse
import json
import os
import time

from mnist_common import locate, read_meta, split_rdd


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="data",
                   help="the setup job's data: a directory or an archive's alias (data)")
    p.add_argument("--model", default="model",
                   help="the train job's model: a directory or an archive's alias (model)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--output", default=os.environ.get("DMARKET_OUTPUT_DIR", "."))
    args = p.parse_args()
    out = os.path.abspath(args.output)

    import numpy as np
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.types import (
        ArrayType,
        FloatType,
        IntegerType,
        StructField,
        StructType,
    )

    t0 = time.time()
    spark = SparkSession.builder.appName("mnist_test").getOrCreate()
    sc = spark.sparkContext
    data, model_dir = locate(args.data), locate(args.model)
    meta = read_meta(data)
    pixels = meta["height"] * meta["width"]
    schema = StructType([StructField("features", ArrayType(FloatType())),
                         StructField("label", IntegerType())])
    df = spark.createDataFrame(
        split_rdd(sc, args.data, "test", max(2, sc.defaultParallelism)), schema)
    model_arg = args.model

    def make_predict_fn():
        # Runs once per Python worker, on the executors: the model is cached there between
        # batches, read from the executor's own copy of the archive.
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        import tensorflow as tf
        from mnist_common import locate

        model = tf.keras.models.load_model(os.path.join(locate(model_arg), "mnist.keras"),
                                           compile=False)

        def predict(inputs):
            return model(inputs, training=False).numpy()

        return predict

    classify = predict_batch_udf(make_predict_fn, return_type=ArrayType(FloatType()),
                                 batch_size=args.batch_size, input_tensor_shapes=[[pixels]])
    scored = (df.withColumn("probs", classify("features"))
                .select("label",
                        (F.array_position("probs", F.array_max("probs")) - 1).alias("prediction"),
                        F.array_max("probs").alias("confidence")))
    rows = scored.collect()
    infer_seconds = time.time() - t0
    labels = np.array([r["label"] for r in rows])
    preds = np.array([r["prediction"] for r in rows])
    conf = np.array([r["confidence"] for r in rows])

    classes = meta["classes"]
    cm = np.zeros((classes, classes), dtype=int)
    for t, pr in zip(labels, preds):
        cm[t, pr] += 1
    accuracy = float((labels == preds).mean())
    result = {"accuracy": accuracy, "correct": int((labels == preds).sum()), "total": len(rows),
              "per_class_recall": {str(c): round(float(cm[c, c] / max(cm[c].sum(), 1)), 4)
                                   for c in range(classes)},
              "dataset": meta["dataset"], "batch_size": args.batch_size,
              "seconds": round(infer_seconds, 1)}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "accuracy.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(out, "predictions.csv"), "w") as f:
        f.write("label,prediction,confidence\n")
        for t, pr, c in zip(labels, preds, conf):
            f.write(f"{t},{pr},{c:.4f}\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    history = None
    history_path = os.path.join(model_dir, "history.json")
    if os.path.exists(history_path):
        with open(history_path) as f:
            history = json.load(f)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    ax = axes[0]
    ax.imshow(cm, cmap="Blues")
    for i in range(classes):
        for j in range(classes):
            ax.text(j, i, cm[i, j], ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=8)
    ax.set_xticks(range(classes))
    ax.set_yticks(range(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix, accuracy {accuracy:.2%} ({len(rows)} images)")
    ax = axes[1]
    if history:
        epochs = range(1, len(history["loss"]) + 1)
        ax.plot(epochs, history["loss"], marker="o", label="training loss")
        if "accuracy" in history:
            ax2 = ax.twinx()
            ax2.plot(epochs, history["accuracy"], marker="s", color="tab:green",
                     label="training accuracy")
            ax2.set_ylabel("accuracy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(f"training ({history.get('mode')} mode, {history.get('num_workers')} workers)")
        ax.legend(loc="upper center")
    else:
        ax.text(0.5, 0.5, "no history.json", ha="center")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "confusion.png"), dpi=100)
    print(json.dumps({k: result[k] for k in ("accuracy", "correct", "total", "seconds")}))
    spark.stop()


if __name__ == "__main__":
    main()
