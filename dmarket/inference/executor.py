"""What the inference server's executors run: batches of inputs through a Keras model.

Imported on the executors (shipped with the application), so it needs neither Django nor the
rest of dmarket. Models stay loaded in each Python worker between tasks: a worker that runs
batches of several jobs keeps each of their models.
"""

import gc
import io
import os
import socket
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

_models = {}
# Models kept loaded per Python worker (ResNet50 is about 100 MB).
MODELS_KEPT = 4


def task_gpus():
    """The GPUs Spark gave this task (TaskContext.resources()); [] when it holds none."""
    from pyspark import TaskContext

    context = TaskContext.get()
    gpu = context.resources().get("gpu") if context is not None else None
    return list(gpu.addresses) if gpu is not None else []


def cuda_devices(addresses):
    """CUDA_VISIBLE_DEVICES for these GPU addresses: their positions among the executor's GPUs
    where its sandbox shows it only those (CUDA numbers them from 0 there; the sandbox lists
    them in DMARKET_EXECUTOR_GPUS), else the addresses themselves. "" (no GPU, the CPU as
    before) when it holds none."""
    visible = [a for a in os.environ.get("DMARKET_EXECUTOR_GPUS", "").split(",") if a]
    if visible:
        return ",".join(str(visible.index(a)) for a in addresses if a in visible)
    return ",".join(addresses)


def _tf():
    if "tensorflow" not in sys.modules:
        # Before TensorFlow loads: it sees only this task's GPUs (none: the CPU).
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_devices(task_gpus())
    import tensorflow as tf

    threads = int(os.environ.get("DMARKET_INFER_THREADS", "0"))
    if threads and not _models:
        # One executor core: more TF threads only fight over it.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    return tf


def blob_path(blobs, key, name):
    """A broadcast file's bytes as a file in this executor's directory (written once)."""
    path = os.path.join(os.getcwd(), f"model-{key[:16]}-{name}")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(blobs[key].value)
        os.replace(tmp, path)
    return path


def build_model(spec, blobs):
    tf = _tf()
    if "blob" in spec:
        return tf.keras.models.load_model(blob_path(blobs, spec["blob"], spec["name"]),
                                          compile=False)
    name, side = spec["builtin"], spec["side"]
    if name == "lenet":
        from mnist_common import build_model as lenet

        model = lenet(tf, side, side)
    elif name == "resnet50":
        model = tf.keras.applications.ResNet50(weights=None, input_shape=(side, side, 3))
    else:
        model = tf.keras.applications.InceptionV3(weights=None, input_shape=(side, side, 3))
    if spec.get("weights_blob"):
        model.load_weights(blob_path(blobs, spec["weights_blob"], spec["weights_name"]))
    return model


def model_for(key, spec, blobs):
    if key not in _models:
        if len(_models) >= MODELS_KEPT:
            # The least recently used goes (dicts keep insertion order; use re-inserts). It
            # was frozen with the rest: unfrozen, so that its cycles can be collected.
            gc.unfreeze()
            del _models[next(iter(_models))]
            gc.collect()
        _models[key] = build_model(spec, blobs)
        # PySpark's reused Python worker runs gc.collect() after every task: with TensorFlow
        # and a model loaded that is ~110 ms of CPU per batch, most of a small batch's cost.
        # What is loaded now stays until evicted; frozen, the collections skip it.
        gc.freeze()
    _models[key] = _models.pop(key)
    return _models[key]


def input_shape(model):
    return tuple(int(d) for d in model.input_shape[1:])


def read_input(payload, shape):
    """An input as the model takes it, from what the driver sent (references.InputReader)."""
    import numpy as np

    kind = payload[0]
    if kind == "synthetic":
        return np.random.default_rng(payload[1]).random(shape, dtype=np.float32)
    if kind == "values":
        return np.asarray(payload[1], dtype=np.float32).reshape(shape)
    if kind == "npy":
        return np.load(io.BytesIO(payload[1])).astype(np.float32).reshape(shape)
    tf = _tf()
    image = tf.io.decode_image(payload[1], channels=shape[-1], expand_animations=False)
    return tf.image.resize(tf.cast(image, tf.float32) / 255.0, shape[:2]).numpy()


def executor_address(driver_host):
    """The address this executor runs at: its worker's (SPARK_LOCAL_IP, as the market's
    workers set it), else the one it reaches the driver from."""
    address = os.environ.get("SPARK_LOCAL_IP")
    if address:
        return address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((driver_host, 9))
            return s.getsockname()[0]
        except OSError:
            return socket.gethostname()


def run_batches(batches, blobs):
    """mapPartitions over batch dicts: {model_key, model, first, items: [(index, payload)],
    cores, driver_host}, run one after the other; `blobs`: the model files' broadcasts by
    key. Yields one result per batch, outputs included, once they have all run."""
    import numpy as np

    # Standalone executors run in work/<app>/<executor id>/.
    executor = os.path.basename(os.getcwd())
    gpus = len(task_gpus())
    results = []
    for batch in batches:
        started = time.perf_counter()
        model = model_for(batch["model_key"], batch["model"], blobs)
        shape = input_shape(model)
        x = np.stack([read_input(locator, shape) for _, locator in batch["items"]])
        predict_start = time.perf_counter()
        y = model(x, training=False)
        y = np.asarray(y, dtype=np.float32).reshape(len(x), -1)
        done = time.perf_counter()
        results.append({
            "first": batch["first"],
            "size": len(x),
            "processing_ms": (done - predict_start) * 1000,
            "wall_ms": (done - started) * 1000,
            "core_ms": round((done - started) * 1000 * batch["cores"]),
            "gpu_ms": round((done - started) * 1000 * gpus),
            "executor": executor,
            "host": executor_address(batch["driver_host"]),
            # float32's 7 significant digits: rounding to decimal places would lose most of
            # a small probability (1,000 classes of about 0.001 each).
            "outputs": [(index, [float(f"{v:.7g}") for v in row.tolist()])
                        for (index, _), row in zip(batch["items"], y)],
            "done": done,
        })
    # When each batch ended, as seconds before the task's end: the driver places the batches
    # of a group in time with its own clock (the machines' clocks may differ).
    end = time.perf_counter()
    for result in results:
        result["after_ms"] = (end - result.pop("done")) * 1000
        yield result
