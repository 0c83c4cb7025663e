"""How close the inference server keeps two concurrent jobs' query rates, sample by sample.

    .venv/bin/python bench/fairness.py [--cores 2] [--window 30] [--warmup 40] [--json]

Starts a local Spark cluster (master, history server, one worker of --cores cores) in a
temporary data directory, against PostgreSQL (DATABASE_URL, default the machine's server; a
fresh database dmarket_bench_fairness), and the inference server through its keeper. Two jobs
run at once, LeNet and ResNet50 at 32x32 (random weights, synthetic inputs, batch 2): their
costs per query differ several times over, so equal rates are the controller's doing. After
both run and --warmup seconds more, it samples GET /api/inference/rates/'s 10 s rates once a
second for --window seconds and prints the max/min ratio per sample (median, 90th
percentile, max) and of the window's mean rates. The test (dmarket/inference/tests/
test_server.py) asserts only the mean, loosely: a 2-core machine's samples are noisy.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchutil import inference_market  # noqa: E402 - bench/ on the path first
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarket.settings")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--window", type=int, default=30, help="seconds sampled")
    parser.add_argument("--warmup", type=int, default=40,
                        help="seconds after both jobs run before sampling")
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    options = parser.parse_args()

    settings, cluster = inference_market("dmarket-bench-fairness-", "dmarket_bench_fairness",
                                         options.cores)
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from dmarket.inference import keeper
    from dmarket.inference.services import inference_cancel, inference_submit

    settings.ALLOWED_HOSTS = ["*"]
    user = get_user_model().objects.create_user("bench", "b@example.org", "bench password 1")
    client = APIClient()
    client.force_authenticate(user)
    jobs = [inference_submit(user, {"name": f"fairness {model}", "model": model, "weights": "",
                                    "data": "synthetic:1000000", "batch_size": 2,
                                    "max_credits": 50})
            for model in ("lenet", "resnet50:32")]

    def rates():
        return client.get("/api/inference/rates/").json()

    def tick_until(predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            keeper.inference_tick()
            if predicate():
                return
            time.sleep(1)
        raise SystemExit(f"not reached within {timeout} s")

    window = []
    try:
        tick_until(lambda: len(body := rates()["jobs"]) == 2
                   and all(j["rate_10s"] > 0 for j in body), 300)
        warm_end = time.monotonic() + options.warmup
        tick_until(lambda: time.monotonic() >= warm_end, options.warmup + 60)
        for second in range(options.window):
            body = rates()
            window.append([body["jobs"][0]["rate_10s"], body["jobs"][1]["rate_10s"],
                           body["max_over_min"]])
            if not options.json:
                print(f"{second + 1:3}/{options.window}  {window[-1][0]:7.2f} "
                      f"{window[-1][1]:7.2f}  max/min {window[-1][2]:.3f}", flush=True)
            keeper.inference_tick()
            time.sleep(1)
    finally:
        for ijob in jobs:
            ijob.refresh_from_db()
            if not ijob.is_finished:
                inference_cancel(ijob, reason="bench over")
        keeper.server_stop()
        cluster.cleanup()

    ratios = sorted(row[2] for row in window)
    means = [sum(row[i] for row in window) / len(window) for i in (0, 1)]
    figures = {"samples": len(window), "cores": options.cores,
               "median": ratios[len(ratios) // 2], "p90": ratios[int(len(ratios) * 0.9)],
               "max": ratios[-1], "of_means": max(means) / min(means),
               "mean_rates": {"lenet": means[0], "resnet50:32": means[1]}}
    if options.json:
        print(json.dumps(figures))
        return
    print(f"\nmax/min of the two jobs' 10 s rates, {len(window)} samples 1 s apart, "
          f"{options.cores} one-core executors:\n")
    print(f"{'median':>8}{'90th':>8}{'max':>8}{'of means':>10}{'lenet q/s':>11}"
          f"{'resnet q/s':>12}")
    print(f"{figures['median']:>8.3f}{figures['p90']:>8.3f}{figures['max']:>8.3f}"
          f"{figures['of_means']:>10.3f}{means[0]:>11.2f}{means[1]:>12.2f}")


if __name__ == "__main__":
    main()
