"""inference_resolve_*: what model and data references name."""

import numpy as np
import pytest

from dmarket.inference.references import (
    BadRef,
    inference_resolve_data,
    inference_resolve_model,
)


def test_built_in_models_with_their_input_side_and_weights(tmp_path):
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"x")
    assert inference_resolve_model("resnet50") == {"builtin": "resnet50", "side": 224,
                                                   "weights": ""}
    assert inference_resolve_model("lenet:8", str(weights)) == {
        "builtin": "lenet", "side": 8, "weights": str(weights), "weights_name": "w.h5"}
    with pytest.raises(BadRef, match="weights are only for the built-in models"):
        inference_resolve_model(str(weights), str(weights))
    # A pinned file of the store is found through path_of.
    assert inference_resolve_model("lenet", "dmarket://w.h5@2", {"dmarket://w.h5@2": str(
        weights)}.get) == {"builtin": "lenet", "side": 28, "weights": str(weights),
                           "weights_name": "w.h5"}
    with pytest.raises(BadRef, match="dmarket://gone.keras@1 is not a file the server can"):
        inference_resolve_model("dmarket://gone.keras@1", "", {}.get)


def test_model_files(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"x")
    assert inference_resolve_model(str(path)) == {"path": str(path), "name": "m.keras"}
    # A pinned store file: its bytes' path, its name's suffix.
    assert inference_resolve_model("dmarket://models/m.keras@2", "", {
        "dmarket://models/m.keras@2": str(tmp_path / "m.keras")}.get) == {
        "path": str(path), "name": "m.keras"}
    with pytest.raises(BadRef, match="ends with .keras or .h5"):
        inference_resolve_model(str(tmp_path / "m.pb"))


def test_data_files_in_name_order_csv_rows_one_input_each(tmp_path):
    np.save(tmp_path / "b.npy", np.zeros(3))
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "c.csv").write_text("label,x\n1,2\n3,4\n")
    (tmp_path / "notes.txt").write_text("ignored")
    assert inference_resolve_data(str(tmp_path)) == [
        ("a.png", ("image", str(tmp_path / "a.png"))),
        ("b.npy", ("npy", str(tmp_path / "b.npy"))),
        ("c.csv:0", ("csv", str(tmp_path / "c.csv"), 0)),
        ("c.csv:1", ("csv", str(tmp_path / "c.csv"), 1)),
    ]
    assert [n for n, _ in inference_resolve_data(str(tmp_path / "*.npy"))] == ["b.npy"]
    assert inference_resolve_data("synthetic:2") == [("synthetic:0", ("synthetic", 0)),
                                                     ("synthetic:1", ("synthetic", 1))]
    with pytest.raises(BadRef, match="not an absolute path"):
        inference_resolve_data("data/*.npy")
    # The store's pinned files come named and in order from pins.py.
    assert inference_resolve_data("dmarket://x/*", [("x/b.npy", str(tmp_path / "b.npy"))]) \
        == [("x/b.npy", ("npy", str(tmp_path / "b.npy")))]


def test_the_driver_sends_csv_rows_as_values_and_files_as_bytes(tmp_path):
    from dmarket.inference.references import InputReader

    (tmp_path / "c.csv").write_text("x,label,y\n1,7,2\n3,8,4\n")
    np.save(tmp_path / "b.npy", np.zeros(3))
    reader = InputReader()
    kind, values = reader.payload(("csv", str(tmp_path / "c.csv"), 1))
    assert kind == "values" and values.tolist() == [3.0, 4.0]
    assert reader.payload(("npy", str(tmp_path / "b.npy"))) == (
        "npy", (tmp_path / "b.npy").read_bytes())
    assert reader.payload(("synthetic", 4)) == ("synthetic", 4)


def test_rates_spread_each_batchs_queries_over_the_time_it_ran():
    from dmarket.inference.rates import spread_rate

    spans = [(-12.0, -8.0, 8), (-3.0, -1.0, 4), (-0.5, -0.5, 2)]
    # Half of the first batch ran inside the last 10 s.
    assert spread_rate(spans, -10.0, 0.0) == pytest.approx((4 + 4 + 2) / 10)
