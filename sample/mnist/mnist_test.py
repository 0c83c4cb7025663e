"""MNIST sample job 3/3: batch inference with Spark over the test split.

Loads the model that mnist_train.py exported (mnist.keras, Keras 2) in the executors through
pyspark.ml.functions.predict_batch_udf, classifies every test image, and writes into
$DMARKET_OUTPUT_DIR:
  accuracy.json    accuracy, counts, per-class recall
  predictions.csv  label, prediction, confidence for every test image
  confusion.png    the confusion matrix and the training loss curve (from history.json)

Usage: mnist_test.py --data DIR --model DIR [--batch-size 256]
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="output directory of mnist_data_setup.py")
    p.add_argument("--model", required=True, help="model directory of mnist_train.py")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--output", default=os.environ.get("DMARKET_OUTPUT_DIR", "."))
    args = p.parse_args()
    data, model_dir, out = (os.path.abspath(x) for x in (args.data, args.model, args.output))
    with open(os.path.join(data, "meta.json")) as f:
        meta = json.load(f)
    pixels = meta["height"] * meta["width"]
    model_path = os.path.join(model_dir, "mnist.keras")

    import numpy as np
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType, IntegerType, StructField, StructType

    t0 = time.time()
    spark = SparkSession.builder.appName("mnist_test").getOrCreate()
    schema = StructType([StructField("label", IntegerType())]
                        + [StructField(f"p{i}", FloatType()) for i in range(pixels)])
    df = spark.read.csv(f"file://{data}/test", header=True, schema=schema)
    df = df.select("label", F.array(*[f"p{i}" for i in range(pixels)]).alias("features"))

    def make_predict_fn():
        # Runs once per Python worker; the model is cached there between batches.
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        import tensorflow as tf

        model = tf.keras.models.load_model(model_path, compile=False)

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
              "model": model_path, "dataset": meta["dataset"],
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
