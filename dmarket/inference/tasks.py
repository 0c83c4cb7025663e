"""What the inference server's executors run: batches of inputs through a Keras model.

Imported on the executors (shipped with the application), so it needs neither Django nor the
rest of dmarket. Models stay loaded in each Python worker between tasks: a worker that runs
batches of several jobs keeps each of their models.
"""

import os
import socket
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

_models = {}
_csv_cache = {}


def _tf():
    import tensorflow as tf

    threads = int(os.environ.get("DMARKET_INFER_THREADS", "0"))
    if threads and not _models:
        # One executor core: more TF threads only fight over it.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    return tf


def build_model(spec):
    tf = _tf()
    if "path" in spec:
        return tf.keras.models.load_model(spec["path"], compile=False)
    name, side = spec["builtin"], spec["side"]
    if name == "lenet":
        from mnist_common import build_model as lenet

        model = lenet(tf, side, side)
    elif name == "resnet50":
        model = tf.keras.applications.ResNet50(weights=None, input_shape=(side, side, 3))
    else:
        model = tf.keras.applications.InceptionV3(weights=None, input_shape=(side, side, 3))
    if spec.get("weights"):
        model.load_weights(spec["weights"])
    return model


def model_for(key, spec):
    if key not in _models:
        _models[key] = build_model(spec)
    return _models[key]


def input_shape(model):
    return tuple(int(d) for d in model.input_shape[1:])


def read_input(locator, shape):
    import numpy as np

    kind = locator[0]
    if kind == "synthetic":
        return np.random.default_rng(locator[1]).random(shape, dtype=np.float32)
    if kind == "npy":
        return np.load(locator[1]).astype(np.float32).reshape(shape)
    if kind == "csv":
        path, row = locator[1], locator[2]
        if path not in _csv_cache:
            from dmarket.inference.resolve import csv_feature_columns, read_csv_header

            columns = csv_feature_columns(read_csv_header(path))
            _csv_cache.clear()
            _csv_cache[path] = np.loadtxt(path, delimiter=",", skiprows=1, usecols=columns,
                                          dtype=np.float32, ndmin=2)
        return _csv_cache[path][row].reshape(shape)
    tf = _tf()
    image = tf.io.decode_image(tf.io.read_file(locator[1]), channels=shape[-1],
                               expand_animations=False)
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


def run_batches(batches):
    """mapPartitions over batch dicts: {model_key, model, first, items: [(index, locator)],
    cores, driver_host}. Yields one result per batch, outputs included."""
    import numpy as np

    # Standalone executors run in work/<app>/<executor id>/.
    executor = os.path.basename(os.getcwd())
    for batch in batches:
        started = time.perf_counter()
        model = model_for(batch["model_key"], batch["model"])
        shape = input_shape(model)
        x = np.stack([read_input(locator, shape) for _, locator in batch["items"]])
        predict_start = time.perf_counter()
        y = model(x, training=False)
        y = np.asarray(y, dtype=np.float32).reshape(len(x), -1)
        done = time.perf_counter()
        yield {
            "first": batch["first"],
            "size": len(x),
            "processing_ms": (done - predict_start) * 1000,
            "wall_ms": (done - started) * 1000,
            "core_ms": round((done - started) * 1000 * batch["cores"]),
            "executor": executor,
            "host": executor_address(batch["driver_host"]),
            "outputs": [(index, [round(float(v), 6) for v in row])
                        for (index, _), row in zip(batch["items"], y)],
        }
