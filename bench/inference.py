"""Queries per second per core of the inference server, against a plain single-process Keras
predict on the same machine in the same run.

    .venv/bin/python bench/inference.py [--cores 2] [--lenet-queries 512] [--resnet-queries 128]
                                        [--resnet-side 224] [--batch-sizes 1 8 32]

Starts a local Spark cluster (master, history server, one worker of --cores cores, executors
of one core) in a temporary data directory, against PostgreSQL (DATABASE_URL, default the
machine's server; a fresh database dmarket_bench_inference), and the inference server through
its keeper (`manage.py inference`'s iteration). For LeNet and ResNet50 (random weights,
synthetic inputs) at each batch size it runs one inference job and, in a subprocess limited
to one TensorFlow thread, `model.predict` over as many inputs at the same batch size.

Steady state only: the server's rate counts the batches that ended after every executor had
ended its first one (which loads the model), over the time from then to the last; the plain
rate is timed after one warm-up predict. A point with too few batches for that (timed 0)
is timed over its whole job, model loading included. Per core: the server's rate over --cores, the plain
rate as is (one thread). The ratio is server per core / plain per core.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchutil import inference_market  # noqa: E402 - bench/ on the path first
sys.path.insert(0, str(ROOT / "sample" / "mnist"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarket.settings")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

PLAIN = """
import json, os, sys, time
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from dmarket.inference.executor import build_model
spec, count, batch = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
model = build_model(spec, {})
shape = tuple(int(d) for d in model.input_shape[1:])
x = np.random.default_rng(0).random((count,) + shape, dtype=np.float32)
model.predict(x[:batch], batch_size=batch, verbose=0)
start = time.perf_counter()
model.predict(x, batch_size=batch, verbose=0)
print(json.dumps({"rate": count / (time.perf_counter() - start)}))
"""


def plain_rate(spec, count, batch):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "sample" /
                                                                         "mnist")]))
    out = subprocess.run([sys.executable, "-c", PLAIN, json.dumps(spec), str(count),
                          str(batch)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["rate"]


def server_rate(ijob):
    from dmarket.inference.models import InferenceBatch

    batches = list(InferenceBatch.objects.filter(job=ijob).order_by("finished_at"))
    warm = max(min(b.finished_at for b in batches if b.executor == e)
               for e in {b.executor for b in batches})
    after = [b for b in batches if b.finished_at > warm]
    if not after:
        # Too few batches for a steady state (e.g. one batch of 32): the whole job, model
        # loading included, marked by a timed count of 0.
        seconds = (batches[-1].finished_at - min(b.started_at for b in batches)).total_seconds()
        return sum(b.size for b in batches) / seconds, 0
    seconds = (after[-1].finished_at - warm).total_seconds()
    return sum(b.size for b in after) / seconds, len(after)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--lenet-queries", type=int, default=512)
    parser.add_argument("--resnet-queries", type=int, default=128)
    parser.add_argument("--resnet-side", type=int, default=224)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    options = parser.parse_args()

    settings, cluster = inference_market("dmarket-bench-inference-", "dmarket_bench_inference",
                                         options.cores)
    from django.contrib.auth import get_user_model

    from dmarket.inference import keeper
    from dmarket.inference.services import inference_submit

    user = get_user_model().objects.create_user("bench", "b@example.org", "bench password 1")
    models = [("lenet", "lenet", options.lenet_queries),
              ("resnet50", f"resnet50:{options.resnet_side}", options.resnet_queries)]
    rows = []
    try:
        for label, model, count in models:
            for batch in options.batch_sizes:
                ijob = inference_submit(user, {
                    "name": f"bench {label} {batch}", "model": model, "weights": "",
                    "data": f"synthetic:{count}", "batch_size": batch, "max_credits": 50})
                while True:
                    keeper.inference_tick()
                    ijob.refresh_from_db()
                    if ijob.is_finished:
                        break
                    time.sleep(0.5)
                if ijob.status != "SUCCEEDED":
                    raise SystemExit(f"{label} at batch {batch}: {ijob.status} "
                                     f"({ijob.status_reason})")
                rate, batches = server_rate(ijob)
                from dmarket.inference.references import inference_resolve_model

                plain = plain_rate(inference_resolve_model(model), count, batch)
                rows.append((label, batch, count, batches, rate, rate / options.cores, plain,
                             rate / options.cores / plain))
                print(f"{label:8} batch {batch:3}: server {rate:8.2f} q/s "
                      f"({rate / options.cores:8.2f} per core), plain {plain:8.2f} q/s per "
                      "core", flush=True)
    finally:
        keeper.server_stop()
        cluster.cleanup()
    print(f"\nqueries per second per core; inference server on {options.cores} one-core "
          "executors vs one-thread Keras predict, same machine, same run\n")
    print(f"{'model':9}{'batch':>6}{'queries':>8}{'timed':>7}{'server q/s':>12}"
          f"{'per core':>10}{'plain/core':>12}{'ratio':>8}")
    for label, batch, count, batches, rate, per_core, plain, ratio in rows:
        print(f"{label:9}{batch:>6}{count:>8}{batches:>7}{rate:>12.2f}{per_core:>10.2f}"
              f"{plain:>12.2f}{ratio:>8.2f}")


if __name__ == "__main__":
    main()
