"""inference_resolve_*: what model and data references name."""

import numpy as np
import pytest

from dmarket.inference.resolve import (
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
        "builtin": "lenet", "side": 8, "weights": str(weights)}
    with pytest.raises(BadRef, match="weights are only for the built-in models"):
        inference_resolve_model(str(weights), str(weights))


def test_model_files(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"x")
    assert inference_resolve_model(str(path)) == {"path": str(path)}
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


def test_rates_spread_each_batchs_queries_over_the_time_it_ran():
    from dmarket.inference.rates import spread_rate

    spans = [(-12.0, -8.0, 8), (-3.0, -1.0, 4), (-0.5, -0.5, 2)]
    # Half of the first batch ran inside the last 10 s.
    assert spread_rate(spans, -10.0, 0.0) == pytest.approx((4 + 4 + 2) / 10)
