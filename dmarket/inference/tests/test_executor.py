"""What the executors run (executor.run_batches), in this process: a saved Keras model over the
MNIST setup job's CSV rows, as the driver sends them (the model's bytes as a broadcast, the
rows' values in the batch); no Spark, so a broadcast is stood in for by an object with its
`.value`."""

import numpy as np
import pytest

from dmarket.inference.references import (
    InputReader,
    inference_resolve_data,
    inference_resolve_model,
)

tf = pytest.importorskip("tensorflow")


def test_a_model_file_over_csv_rows_one_output_each(tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[3] / "sample" / "mnist"))
    sys.modules.pop("mnist_common", None)
    from dmarket.inference import executor

    model = executor.build_model({"builtin": "lenet", "side": 8, "weights": ""}, {})
    path = tmp_path / "lenet.keras"
    model.save(path)
    rows = np.random.default_rng(1).random((5, 64)).round(3)
    data = tmp_path / "test"
    data.mkdir()
    (data / "part-00000.csv").write_text(
        "label," + ",".join(f"p{i}" for i in range(64)) + "\n"
        + "".join(f"{i}," + ",".join(map(str, row)) + "\n" for i, row in enumerate(rows)))

    inputs = inference_resolve_data(str(data))
    assert inference_resolve_model(str(path)) == {"path": str(path), "name": "lenet.keras"}
    broadcast = type("Broadcast", (), {"value": path.read_bytes()})()
    spec = {"blob": "ab" * 32, "name": "lenet.keras"}
    reader = InputReader()
    batch = {"model_key": "k", "model": spec, "first": 0, "cores": 1,
             "items": [(i, reader.payload(inputs[i][1])) for i in range(5)],
             "driver_host": "127.0.0.1"}
    monkeypatch.chdir(tmp_path)
    (result,) = list(executor.run_batches([batch], {"ab" * 32: broadcast}))

    assert [name for name, _ in inputs] == [f"part-00000.csv:{i}" for i in range(5)]
    assert result["size"] == 5 and [i for i, _ in result["outputs"]] == list(range(5))
    expected = model(rows.astype(np.float32), training=False).numpy()
    assert np.allclose([out for _, out in result["outputs"]], expected, atol=1e-5)
    assert result["core_ms"] >= result["processing_ms"] > 0
    # The executor kept the model's bytes as a file in its directory, once.
    assert (tmp_path / f"model-{'ab' * 8}-lenet.keras").read_bytes() == path.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_npy_and_image_inputs_go_as_their_bytes_and_are_decoded_to_the_models_shape(
        tmp_path):
    from dmarket.inference import executor

    array = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    np.save(tmp_path / "a.npy", array)
    png = tf.io.encode_png(tf.constant([[[0, 255, 0], [255, 0, 0]]] * 2, dtype=tf.uint8))
    (tmp_path / "b.png").write_bytes(png.numpy())
    inputs = inference_resolve_data(str(tmp_path))
    reader = InputReader()
    payloads = [reader.payload(locator) for _, locator in inputs]
    assert [kind for kind, _ in payloads] == ["npy", "image"]
    assert np.array_equal(executor.read_input(payloads[0], (2, 2, 3)), array)
    image = executor.read_input(payloads[1], (4, 4, 3))
    assert image.shape == (4, 4, 3) and 0 <= image.min() and image.max() <= 1


def test_an_evicted_model_is_freed_although_loaded_models_are_frozen(monkeypatch):
    """Loaded models are frozen out of the collections; one evicted must be collectable
    again. A model here is an object in a reference cycle (only the collector frees those),
    built by a stand-in for build_model."""
    import gc
    import weakref

    from dmarket.inference import executor

    class Model:
        def __init__(self):
            self.me = self

    monkeypatch.setattr(executor, "_models", {})
    monkeypatch.setattr(executor, "MODELS_KEPT", 1)
    monkeypatch.setattr(executor, "build_model", lambda spec, blobs: Model())
    try:
        ref = weakref.ref(executor.model_for("a", {}, {}))
        assert gc.get_freeze_count() > 0
        executor.model_for("b", {}, {})
        gc.collect()
        assert ref() is None
        assert list(executor._models) == ["b"]
    finally:
        gc.unfreeze()
