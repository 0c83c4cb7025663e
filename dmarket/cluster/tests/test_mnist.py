"""The MNIST sample end to end through the market, as sample/mnist/*.sh run it: the jobs' code
put into the user's file store, the three jobs submitted through the API naming it and each
other's results as dmarket:// files (fetched over HTTP from the live server by spark-submit and
every executor), run on the real test cluster (TensorFlowOnSpark on two 1-core workers)."""

import importlib.util
import json
from decimal import Decimal

import pytest

from dmarket.conftest import client_for
from dmarket.credits.models import LedgerEntry
from dmarket.files.tests.util import uploaded
from dmarket.jobs.models import Job
from dmarket.settings import BASE_DIR

from .util import (
    drive,
    expected_bill,
    history_core_ms,
    ledger_sum,
    read_log,
    settled,
    share_workers,
    submit,
)

MNIST = BASE_DIR / "sample" / "mnist"

def store_code(user):
    for path in sorted(MNIST.glob("*.py")):
        uploaded(user, f"mnist/{path.name}", path.read_bytes())


def run(user, script, params, archives=(), timeout=600):
    job = submit(user, name=script, entry_file=f"dmarket://mnist/{script}",
                 libs=["dmarket://mnist/mnist_common.py"], archives=list(archives),
                 app_params=params, cores=2, executor_memory_mb=512, max_credits="5")
    job = drive(job, settled, timeout=timeout)
    assert job.status == Job.SUCCEEDED, read_log(job)[-5000:]
    return job


def assert_billed(job):
    """Charged exactly its executors' core-time at its price, all of it earned by owners."""
    core_ms = history_core_ms(job)
    assert len(core_ms) == 2
    assert job.run.cost == expected_bill(job, core_ms) > 0
    assert -ledger_sum(run=job.run, kind=LedgerEntry.CHARGE) == job.run.cost
    assert ledger_sum(run=job.run, kind=LedgerEntry.EARNING) == job.run.cost


@pytest.mark.django_db(transaction=True)
@pytest.mark.mnist
@pytest.mark.timeout(1500)
@pytest.mark.skipif(importlib.util.find_spec("tensorflowonspark") is None,
                    reason="TensorFlowOnSpark is not installed (see requirements.txt)")
@pytest.mark.parametrize("mode,epochs", [("spark", 10), ("tensorflow", 10)])
def test_mnist_pipeline_reaches_95_percent_and_bills_every_job(cluster, make_user, live_server,
                                                               settings, mode, epochs):
    settings.DMARKET_PUBLIC_URL = live_server.url
    machines = share_workers(cluster, make_user)
    alice = make_user("alice")
    store_code(alice)

    setup = run(alice, "mnist_data_setup.py", ["--dataset", "mnist5k"])
    meta = json.loads((setup.output_dir / "meta.json").read_text())
    assert (meta["train"], meta["test"], meta["height"], meta["width"]) == (4000, 1000, 28, 28)
    data = f"dmarket://jobs/{setup.pk}/results/mnist_data.tar.gz"

    train = run(alice, "mnist_train.py", ["--data", "data", "--mode", mode,
                                          "--epochs", str(epochs)], [f"{data}#data"])
    summary = json.loads((train.output_dir / "train_summary.json").read_text())
    assert (summary["mode"], summary["cluster_size"], summary["epochs"]) == (mode, 2, epochs)
    assert train.entry_file == "dmarket://mnist/mnist_train.py@1"
    model = f"dmarket://jobs/{train.pk}/results/model.zip"

    test = run(alice, "mnist_test.py", ["--data", "data", "--model", "model"],
               [f"{data}#data", f"{model}#model"])
    accuracy = json.loads((test.output_dir / "accuracy.json").read_text())
    print(f"\nMNIST {mode} mode: test accuracy {accuracy['accuracy']:.3f}; wall "
          + ", ".join(f"{j.name} {(j.finished_at - j.started_at).total_seconds():.0f} s"
                      for j in (setup, train, test)))
    assert accuracy["total"] == 1000
    assert accuracy["accuracy"] >= 0.95
    results = [r["path"] for r in client_for(alice).get(
        f"/api/jobs/{test.pk}/results/").json()["results"]]
    assert results == ["accuracy.json", "confusion.png", "predictions.csv"]
    predictions = (test.output_dir / "predictions.csv").read_text().splitlines()
    assert predictions[0] == "label,prediction,confidence" and len(predictions) == 1001
    assert (test.output_dir / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for job in (setup, train, test):
        assert_billed(job)
    spent = setup.run.cost + train.run.cost + test.run.cost
    credits = client_for(alice).get("/api/credits/").json()
    assert (credits["held"], Decimal(credits["balance"])) == ("0.000000", Decimal(100) - spent)
    assert sum(ledger_sum(machine=m, kind=LedgerEntry.EARNING) for m in machines.values()) \
        == spent


def load_sample_module(name):
    spec = importlib.util.spec_from_file_location(name, MNIST / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_idx(path, array):
    """An IDX file of unsigned bytes, gzipped, as the MNIST distribution has them."""
    import gzip

    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def test_full_mnist_idx_files_are_read_as_download_sh_leaves_them(tmp_path):
    import numpy as np

    setup = load_sample_module("mnist_data_setup")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 20)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)

    parts, height, width = setup.load_mnist(str(tmp_path))

    x, y = parts["train"]
    assert (height, width, x.shape, y.tolist()[:12]) == (28, 28, (30, 784),
                                                         [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert parts["test"][0].shape == (20, 784)


def test_a_missing_mnist_file_names_download_sh(tmp_path):
    setup = load_sample_module("mnist_data_setup")
    with pytest.raises(SystemExit, match="run sample/mnist/download.sh"):
        setup.load_mnist(str(tmp_path))
