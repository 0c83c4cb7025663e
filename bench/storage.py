"""The file store's two backends, the server's own directory (local) and SeaweedFS through its
S3 gateway (s3), measured in one run on one machine, as ratios SeaweedFS / local.

    .venv/bin/python bench/storage.py [--size-mb 300] [--rounds 1] [--fetchers 4]
                                      [--threads 4] [--json]

Starts, each on free ports in a temporary data directory, against PostgreSQL (DATABASE_URL
names the server, default postgres://postgres@127.0.0.1:5432; the database is always a fresh
dmarket_bench_storage): a SeaweedFS cluster as scripts/start_storage.sh starts it (master,
four volume servers on 127.0.0.21-24, filer and S3 gateway, 4 copies of every blob), and two
central servers on the same database, gunicorn as scripts/start_central_server.sh runs it (one
gthread worker of --threads threads): one with DMARKET_STORAGE=local, one with the cluster's
storage.env. Each backend has a user of its own, so that neither server reads the other's
blobs. A file of --size-mb MB (2^20 bytes) of random bytes is made once. Then, round after
round (their order alternating, so that neither backend always goes first), for each backend:

- upload:   PUT /api/files/bench/big.bin through the client's own HTTP code
            (dmarket_client.api.Client.upload: the body streamed with Content-Length and
            X-Content-SHA256), timed from the request to the server's answer. The client's
            hashing of the local file beforehand and its start-up are not timed: they are the
            same for both backends.
- download: GET /api/files/bench/big.bin (Client.download, SHA-256 checked, bytes to
            /dev/null): both backends stream through the server.
- fetch:    a job submitted through the API naming the file as an input (it stays QUEUED, no
            launcher runs, so its credential stays valid), then --fetchers processes at once
            each GET the job's input URL as Spark's executors do (following redirects, bytes
            hashed and discarded): local streams the bytes through gunicorn, s3 answers 302 to
            a presigned URL of the gateway. Wall time from the first start to the last end.
- server memory: the gunicorn worker's peak resident memory (VmHWM) grown over each phase,
            the peak reset before it (/proc/PID/clear_refs, 5); where the kernel refuses the
            reset, the growth of the peak since the worker's first request (the table says
            which). The reset goes back to the worker's resident memory, which keeps what an
            earlier phase's allocations left (Python's and the C library's heaps rarely give
            memory back): the worker's peak at the end, also printed, is the overall figure.

Prints the median over rounds of each figure and SeaweedFS / local (for MB/s below 1 is
slower, for seconds above 1 is slower); --json prints the same, and every round's figures, as
JSON. Progress goes to stderr. Nothing else should run meanwhile: the machine's cores are
shared by the client, the server, the fetchers and the store's six processes.
"""

import argparse
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from benchutil import free_port, fresh_database  # noqa: E402 - bench/ on the path first
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarket.settings")

MB = 1024 * 1024
DATABASE = "dmarket_bench_storage"
BACKENDS = ("local", "s3")
NAME = "bench/big.bin"


def log(message):
    print(message, file=sys.stderr, flush=True)


def status_kb(pid, field):
    """VmHWM (peak) or VmRSS (now) of a process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def reset_peak(pid):
    """Sets the process's VmHWM back to its VmRSS (Linux 4.0+); False where refused."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return status_kb(pid, "VmHWM") <= status_kb(pid, "VmRSS") + 64


class Server:
    """gunicorn as scripts/start_central_server.sh runs it, but one worker (its memory is the
    one to watch) in the foreground, in a session of its own (stopped as a group)."""

    def __init__(self, backend, env, threads, logs):
        port = free_port()
        self.backend, self.url = backend, f"http://127.0.0.1:{port}"
        self.log_path = logs / f"web-{backend}.log"
        env = dict(env, DMARKET_PUBLIC_URL=self.url)
        self.process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "gunicorn"), "dmarket.wsgi", "--bind",
             f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread", "--threads",
             str(threads), "--timeout", "120"],
            cwd=ROOT, env=env, stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn ({backend}) exited: {self.log_tail()}")
            try:
                if requests.get(self.url + "/api/schema/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"gunicorn ({backend}) did not answer: {self.log_tail()}")
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        (self.worker,) = [int(p) for p in children.read_text().split()]

    def log_tail(self):
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self):
        """TERM, then KILL: a gthread worker holding an idle kept-alive connection may wait
        out its graceful timeout (30 s)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def store_cluster(base, size_mb, rounds):
    """A SeaweedFS cluster (dmarket/files/tests/seaweed_cluster.py) with room on each volume
    server for a copy of every round's upload: the tests' 20 volumes of 64 MB hold only
    1.28 GB, and a volume is only taken back by SeaweedFS's vacuum, minutes later."""
    from dmarket.files.tests.seaweed_cluster import SeaweedCluster

    volumes = 2 * math.ceil(size_mb * rounds / 64) + 20

    class Cluster(SeaweedCluster):
        def _environ(self):
            return {**super()._environ(), "DMARKET_STORAGE_VOLUME_MAX": str(volumes)}

    return Cluster(base).start()


def make_file(path, size_mb):
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size_mb):
            chunk = os.urandom(MB)
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def register(server, username):
    """A user of its own on that server (with the sign-up grant, for the jobs' holds): an API
    client with their token."""
    from dmarket_client.api import Client

    answer = requests.post(server.url + "/api/auth/register/", timeout=30, json={
        "username": username, "password": "bench storage password 1"})
    answer.raise_for_status()
    token = answer.json()["token"]
    # Per socket operation: an upload's answer comes once the store has every byte.
    return Client(server.url, token, timeout=300)


def timed_phase(server, memory, fn):
    """fn()'s result, its seconds, and the worker's peak memory growth over it in MB (from the
    peak reset before it, or from the worker's first peak where the reset is refused)."""
    if memory["reset"]:
        reset_peak(server.worker)
        before = status_kb(server.worker, "VmHWM")
    else:
        before = memory["first"][server.backend]
    started = time.monotonic()
    result = fn()
    seconds = time.monotonic() - started
    growth = (status_kb(server.worker, "VmHWM") - before) / 1024
    return result, seconds, growth


def fetcher(url, sha256, size, barrier, results):
    """One executor fetching the job's input: follows the redirect, hashes, discards."""
    barrier.wait()
    started = time.monotonic()
    digest, received, error, redirected = hashlib.sha256(), 0, None, False
    try:
        with requests.get(url, stream=True, timeout=(5, 120)) as response:
            response.raise_for_status()
            redirected = bool(response.history)
            for chunk in response.iter_content(MB):
                digest.update(chunk)
                received += len(chunk)
    except requests.RequestException as e:
        error = str(e)
    if error is None and (received, digest.hexdigest()) != (size, sha256):
        error = f"got {received} bytes, SHA-256 {digest.hexdigest()}"
    results.put({"started": started, "ended": time.monotonic(), "error": error,
                 "redirected": redirected})


def fetch_all(url, sha256, size, count):
    """count processes (not threads: executors are processes of their own, and their hashing
    would share one interpreter's lock) fetching at once; the wall time from the first start
    to the last end, and whether they were redirected."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(count), context.Queue()
    processes = [context.Process(target=fetcher, args=(url, sha256, size, barrier, results))
                 for _ in range(count)]
    for p in processes:
        p.start()
    done = [results.get(timeout=600) for _ in processes]
    for p in processes:
        p.join()
    errors = [d["error"] for d in done if d["error"]]
    if errors:
        raise RuntimeError(f"a fetcher failed: {errors[0]}")
    return (max(d["ended"] for d in done) - min(d["started"] for d in done),
            {d["redirected"] for d in done})


def one_round(server, client, options, source, sha256, memory):
    from django.conf import settings
    from django.db import connections

    from dmarket.jobs.inputs import job_input_urls
    from dmarket.jobs.models import Job

    size = options.size_mb * MB
    stored, put_s, put_mb = timed_phase(server, memory, lambda: client.upload(
        f"files/{NAME}", source, sha256))
    assert (stored["size"], stored["sha256"]) == (size, sha256), stored

    def download():
        digest = hashlib.sha256()
        received, _ = client.download(f"files/{NAME}", os.devnull, digest=digest)
        assert (received, digest.hexdigest()) == (size, sha256), "the download differs"

    _, get_s, get_mb = timed_phase(server, memory, download)

    # The job pins this round's version; QUEUED, it keeps its credential.
    job = client.post("jobs/", json={
        "name": "bench storage", "entry_file": "dmarket://bench/app.py",
        "files": [f"dmarket://{NAME}"], "cores": 1, "executor_memory_mb": 512,
        "max_credits": "0.01"})
    job = Job.objects.get(pk=job["id"])
    # The URL the launcher would give Spark (the job's credential in it), on this backend's
    # server.
    settings.DMARKET_PUBLIC_URL = server.url
    url = job_input_urls(job)(job.files[0], "files")
    # The fetchers are forked: none may share this process's database connection.
    connections.close_all()
    (fetch_s, redirected), _, fetch_mb = timed_phase(
        server, memory, lambda: fetch_all(url, sha256, size, options.fetchers))
    expected = {server.backend == "s3"}
    assert redirected == expected, f"{server.backend}: redirected {redirected}"
    # Its credits' hold back, for the next rounds.
    client.post(f"jobs/{job.pk}/cancel/")
    return {"upload_s": put_s, "upload_mbps": options.size_mb / put_s,
            "download_s": get_s, "download_mbps": options.size_mb / get_s,
            "fetch_s": fetch_s, "fetch_mbps": options.size_mb * options.fetchers / fetch_s,
            "server_upload_mb": put_mb, "server_download_mb": get_mb,
            "server_fetch_mb": fetch_mb}


ROWS = [  # key, label, unit format
    ("upload_mbps", "upload through the server, MB/s", "{:10.1f}"),
    ("download_mbps", "download through the server, MB/s", "{:10.1f}"),
    ("fetch_s", "job input fetch, {k} at once, wall s", "{:10.2f}"),
    ("fetch_mbps", "job input fetch, {k} at once, MB/s", "{:10.1f}"),
    ("server_upload_mb", "server worker peak growth, upload MB", "{:10.1f}"),
    ("server_download_mb", "server worker peak growth, download MB", "{:10.1f}"),
    ("server_fetch_mb", "server worker peak growth, fetch MB", "{:10.1f}"),
]


def summary(rounds):
    median = {b: {k: statistics.median(r[k] for r in rounds[b]) for k, _, _ in ROWS}
              for b in BACKENDS}
    ratios = {k: (median["s3"][k] / median["local"][k] if median["local"][k] else None)
              for k, _, _ in ROWS if not k.startswith("server_")}
    return median, ratios


def report(options, rounds, memory, store_peaks):
    median, ratios = summary(rounds)
    print(f"\n{options.size_mb} MB file, {options.rounds} round(s), median; gunicorn 1 gthread "
          f"worker x {options.threads} threads; {options.fetchers} fetcher processes; "
          f"{os.cpu_count()} CPUs")
    print(f"{'':44}{'local':>10}{'seaweedfs':>10}{'sw/local':>10}")
    for key, label, fmt in ROWS:
        label = label.format(k=options.fetchers)
        ratio = ratios.get(key)
        ratio_text = f"{ratio:10.2f}" if ratio is not None else f"{'':10}"
        print(f"{label:44}{fmt.format(median['local'][key])}{fmt.format(median['s3'][key])}"
              f"{ratio_text}")
    how = "peak reset before each phase" if memory["reset"] else \
        "cum: the peak's growth since the worker's first request (the reset was refused)"
    print(f"server worker memory: {how}; worker peak at the end: " + ", ".join(
        f"{b} {memory['end'][b] / 1024:.1f} MB" for b in BACKENDS))
    print("SeaweedFS processes' peak RSS at the end: " + ", ".join(
        f"{name} {kb / 1024:.0f} MB" for name, kb in store_peaks.items())
          + f" (total {sum(store_peaks.values()) / 1024:.0f} MB)")
    for b in BACKENDS:
        print(f"{b:6} rounds: " + "; ".join(
            f"up {r['upload_mbps']:.0f} down {r['download_mbps']:.0f} fetch "
            f"{r['fetch_s']:.2f} s" for r in rounds[b]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--fetchers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4,
                        help="gunicorn threads (start_central_server.sh's default: 4)")
    parser.add_argument("--json", action="store_true", help="print JSON, not the table")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (logs) at the end")
    options = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="dmarket-bench-storage-"))
    database = fresh_database(os.environ.get(
        "DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DATABASE}"), DATABASE)
    quota = str(options.size_mb * (options.rounds + 2) + 100)
    common = dict(os.environ, DATABASE_URL=database, DMARKET_STORAGE_QUOTA_MB=quota,
                  SECRET_KEY="bench storage")
    os.environ.update(DATABASE_URL=database, DMARKET_DATA_DIR=str(data / "bench"))

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    logs = data / "logs"
    logs.mkdir()
    cluster, servers, clients = None, {}, {}
    try:
        log(f"SeaweedFS starting in {data}")
        cluster = store_cluster(data / "store", options.size_mb, options.rounds)
        envs = {"local": dict(common, DMARKET_STORAGE="local",
                              DMARKET_DATA_DIR=str(data / "local")),
                "s3": dict(common, **cluster.env, DMARKET_DATA_DIR=str(data / "s3"))}
        for backend in BACKENDS:
            servers[backend] = Server(backend, envs[backend], options.threads, logs)
        for b in BACKENDS:
            clients[b] = register(servers[b], f"bench-{b}")
        for b in BACKENDS:
            clients[b].upload("files/bench/app.py", ROOT / "sample" / "pi" / "pi.py",
                              hashlib.sha256((ROOT / "sample" / "pi" / "pi.py").read_bytes())
                              .hexdigest())
        log(f"making {options.size_mb} MB of random bytes")
        source = data / "big.bin"
        sha256 = make_file(source, options.size_mb)

        # A first request each, so that the workers have loaded what they serve with.
        for b in BACKENDS:
            clients[b].get("files/")
        memory = {"reset": all(reset_peak(s.worker) for s in servers.values()),
                  "first": {b: status_kb(servers[b].worker, "VmHWM") for b in BACKENDS}}
        rounds = {b: [] for b in BACKENDS}
        for number in range(options.rounds):
            order = BACKENDS if number % 2 == 0 else BACKENDS[::-1]
            for b in order:
                result = one_round(servers[b], clients[b], options, source, sha256, memory)
                rounds[b].append(result)
                log(f"round {number + 1}/{options.rounds} {b:5}: upload "
                    f"{result['upload_mbps']:.1f} MB/s, download {result['download_mbps']:.1f}"
                    f" MB/s, fetch {result['fetch_s']:.2f} s ({result['fetch_mbps']:.1f} MB/s)"
                    f"; worker peak growth {result['server_upload_mb']:.1f} / "
                    f"{result['server_download_mb']:.1f} / {result['server_fetch_mb']:.1f} MB")
        memory["end"] = {b: status_kb(servers[b].worker, "VmHWM") for b in BACKENDS}
        store_peaks = {}
        for pid_file in sorted((cluster.storage_dir / "run").glob("*.pid")):
            try:
                store_peaks[pid_file.stem] = status_kb(int(pid_file.read_text()), "VmHWM")
            except (OSError, ValueError, RuntimeError):
                pass
        if options.json:
            median, ratios = summary(rounds)
            print(json.dumps({
                "size_mb": options.size_mb, "rounds": options.rounds,
                "fetchers": options.fetchers, "threads": options.threads,
                "cpus": os.cpu_count(), "memory_peak_reset": memory["reset"],
                "median": median, "ratios_seaweedfs_over_local": ratios,
                "each_round": rounds,
                "server_worker_peak_end_mb": {b: memory["end"][b] / 1024 for b in BACKENDS},
                "seaweedfs_peak_rss_mb": {k: v / 1024 for k, v in store_peaks.items()},
            }, indent=2))
        else:
            report(options, rounds, memory, store_peaks)
    except BaseException:
        for server in servers.values():
            log(f"--- gunicorn ({server.backend}) log\n{server.log_tail()}")
        raise
    finally:
        for client in clients.values():
            client.session.close()
        for server in servers.values():
            try:
                server.stop()
            except Exception as e:  # the store is stopped all the same
                log(f"gunicorn ({server.backend}) did not stop: {e}")
        if cluster is not None:
            cluster.stop()
        if options.keep:
            log(f"kept {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
