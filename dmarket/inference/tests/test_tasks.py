"""What the executors run (tasks.run_batches), in this process: a saved Keras model over the
MNIST setup job's CSV rows; no Spark."""

import numpy as np
import pytest

from dmarket.inference.resolve import inference_resolve_data, inference_resolve_model

tf = pytest.importorskip("tensorflow")


def test_a_model_file_over_csv_rows_one_output_each(tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[3] / "sample" / "mnist"))
    sys.modules.pop("mnist_common", None)
    from dmarket.inference import tasks

    model = tasks.build_model({"builtin": "lenet", "side": 8, "weights": ""})
    path = tmp_path / "lenet.keras"
    model.save(path)
    rows = np.random.default_rng(1).random((5, 64)).round(3)
    data = tmp_path / "test"
    data.mkdir()
    (data / "part-00000.csv").write_text(
        "label," + ",".join(f"p{i}" for i in range(64)) + "\n"
        + "".join(f"{i}," + ",".join(map(str, row)) + "\n" for i, row in enumerate(rows)))

    inputs = inference_resolve_data(str(data))
    spec = inference_resolve_model(str(path))
    batch = {"model_key": str(path), "model": spec, "first": 0, "cores": 1,
             "items": [(i, inputs[i][1]) for i in range(5)], "driver_host": "127.0.0.1"}
    (result,) = list(tasks.run_batches([batch]))

    assert [name for name, _ in inputs] == [f"part-00000.csv:{i}" for i in range(5)]
    assert result["size"] == 5 and [i for i, _ in result["outputs"]] == list(range(5))
    expected = model(rows.astype(np.float32), training=False).numpy()
    assert np.allclose([out for _, out in result["outputs"]], expected, atol=1e-5)
    assert result["core_ms"] >= result["processing_ms"] > 0
