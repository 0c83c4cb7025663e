"""The inference server: one Spark application that serves every inference job.

Run by its keeper (keeper.py, `manage.py inference`) under spark-submit (client mode) on the
central server; uses the Django ORM directly. Each running job is a thread (Runner) that cuts
its pending inputs into batches of the job's current batch size and submits each as a small
Spark job in the job's own FAIR scheduler pool; the executors run the model
(executor.run_batches) and send back the outputs and timings, which the runner records. A
controller keeps the jobs' query rates together by holding back the jobs ahead (see
Controller). The driver stops after DMARKET_INFERENCE_IDLE seconds with no job, and on SIGTERM
(its jobs stay RUNNING and the next driver resumes them from their outputs: an input with an
output is never run again).
"""

import collections
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

log = logging.getLogger("dmarket.inference.server")

# Taken for the driver's lifetime, so that a second driver exits at once.
ADVISORY_LOCK = 0x646D6B69  # "dmki"
# Seconds the rates in the driver's log are measured over.
CONTROL_WINDOW = 10.0
READ_INTERVAL = 0.5
# A batch whose Spark job fails this many times (after Spark's own task retries) fails its job.
MAX_BATCH_FAILURES = 4
# A Spark job carries batches of one inference job for about this many seconds of work.
TASK_TARGET = 0.25
MAX_PACK = 32
# Seconds a driver told to stop has to finish its batches in flight.
STOP_GRACE = 15


class Runner(threading.Thread):
    """One inference job: batches submitted while its in-flight limit and pace allow."""

    def __init__(self, server, ijob):
        super().__init__(name=f"infer-{ijob.pk}", daemon=True)
        self.server = server
        self.ijob = ijob
        self.limit = server.max_in_flight
        # Queries completed by this driver, and in batches submitted but not back yet: their
        # sum is what the controller compares.
        self.completed = 0
        self.in_flight_queries = 0
        self.batch_size = ijob.batch_size
        # Seconds a batch of the current size holds its core (smoothed), once timed.
        self.batch_wall = None
        self.completions = collections.deque()
        self.lock = threading.Lock()
        self.first_completion = None
        self.finished = False
        self.blobs = {}

    @property
    def submitted(self):
        return self.completed + self.in_flight_queries

    def rate_over(self, seconds, now):
        """Queries per second over the last `seconds`; None until its first batch is that
        old (a rate over part of a window would read low)."""
        from .rates import spread_rate

        with self.lock:
            while self.completions and self.completions[0][1] < now - 60:
                self.completions.popleft()
            spans = list(self.completions)
        if self.first_completion is None or now - self.first_completion < seconds:
            return None
        return spread_rate(spans, now - seconds, now)

    def run(self):
        from django.db import connection

        from .models import InferenceJob
        from .services import inference_finish

        try:
            self.serve()
        except Exception as e:
            log.exception("inference job %s failed", self.ijob.pk)
            inference_finish(self.ijob, InferenceJob.FAILED, f"{type(e).__name__}: {e}")
        finally:
            self.finished = True
            for blob in self.blobs.values():
                blob.unpersist()
            connection.close()

    def spark_job(self, batches):
        from .executor import run_batches

        sc = self.server.sc
        blobs = self.blobs
        sc.setLocalProperty("spark.scheduler.pool", self.ijob.pool)
        sc.setJobGroup(self.ijob.pool, f"inference job {self.ijob.pk}")
        # The broadcasts go in the closure: so Spark ships them with the tasks.
        # One task runs the group's batches one after the other.
        return sc.parallelize(batches, 1).mapPartitions(
            lambda it: run_batches(it, blobs)).collect()

    def ship(self, spec):
        """The model spec as the executors take it: its files' bytes as Spark broadcasts
        (read here, on the server; the executors need no access to its disk)."""
        import hashlib

        def broadcast(path):
            with open(path, "rb") as f:
                data = f.read()
            key = hashlib.sha256(data).hexdigest()
            if key not in self.blobs:
                self.blobs[key] = self.server.sc.broadcast(data)
            return key

        spec = dict(spec)
        if "path" in spec:
            spec["blob"] = broadcast(spec.pop("path"))
        elif spec.get("weights"):
            spec["weights_blob"] = broadcast(spec.pop("weights"))
        return spec

    def serve(self):
        from dmarket.jobs.lifecycle import stop_outcome

        from .models import InferenceJob, InferenceOutput
        from .pins import inference_files
        from .references import InputReader, inference_resolve_data, inference_resolve_model
        from .services import inference_bill, inference_finish, inference_record

        ijob = self.ijob
        path_of = inference_files(ijob)
        spec = self.ship(inference_resolve_model(ijob.model, ijob.weights, path_of))
        inputs = inference_resolve_data(
            ijob.data, [(name, path_of(uri)) for name, uri in ijob.data_files] or None)
        reader = InputReader()
        InferenceJob.objects.filter(pk=ijob.pk).update(input_count=len(inputs))
        done = set(InferenceOutput.objects.filter(job=ijob).values_list("index", flat=True))
        pending = collections.deque(i for i in range(len(inputs)) if i not in done)
        failures = collections.Counter()
        # By content: a model file's key is its hash.
        model_key = repr(sorted(spec.items()))
        pool = ThreadPoolExecutor(self.server.max_in_flight, thread_name_prefix=ijob.pool)
        in_flight = {}
        last_bill = time.monotonic()
        stop = None
        log.info("inference job %s: %s inputs, %s to do", ijob.pk, len(inputs), len(pending))
        last_read = 0.0
        while True:
            if time.monotonic() - last_read >= READ_INTERVAL:
                # The job's batch size and a cancel, twice a second: often enough for the
                # next batches, rarely enough not to load the database.
                latest = InferenceJob.objects.only(
                    "batch_size", "status", "cancel_requested", "stop_status",
                    "status_reason").get(pk=ijob.pk)
                batch_size, status = latest.batch_size, latest.status
                last_read = time.monotonic()
            if status != InferenceJob.RUNNING:
                stop = (status, "")
            elif latest.cancel_requested:
                stop = stop_outcome(latest)
            elif self.server.stopping.is_set():
                stop = (None, "")
            if in_flight:
                finished, _ = wait(list(in_flight), timeout=0.1, return_when=FIRST_COMPLETED)
            else:
                finished = []
            for future in finished:
                indices = in_flight.pop(future)
                try:
                    results = future.result()
                except Exception as e:
                    self.in_flight_queries -= len(indices)
                    failures[indices[0]] += 1
                    log.warning("inference job %s: batch at %s failed (%s): %s", ijob.pk,
                                indices[0], failures[indices[0]], str(e).splitlines()[0:1])
                    if failures[indices[0]] >= MAX_BATCH_FAILURES:
                        raise RuntimeError(f"a batch failed {MAX_BATCH_FAILURES} times: "
                                           f"{last_line(e)}") from None
                    pending.extendleft(reversed(indices))
                    continue
                inference_record(ijob, results, inputs, self.server.machine_of)
                self.in_flight_queries -= len(indices)
                self.completed += len(indices)
                now = time.monotonic()
                walls = [r["wall_ms"] / 1000 for r in results if r["size"] == self.batch_size]
                if walls:
                    # The first batch of a model includes loading it: the smallest is the cost.
                    wall = min(walls)
                    self.batch_wall = wall if self.batch_wall is None else (
                        0.8 * self.batch_wall + 0.2 * wall)
                with self.lock:
                    for r in results:
                        end = now - r["after_ms"] / 1000
                        self.completions.append((end - r["wall_ms"] / 1000, end, r["size"]))
                    if self.first_completion is None:
                        self.first_completion = now
            now = time.monotonic()
            if now - last_bill >= 2:
                inference_bill(ijob)
                last_bill = now
            if stop is not None:
                if in_flight:
                    continue
                if stop[0] is not None and stop[0] != status:
                    inference_finish(ijob, stop[0], stop[1])
                pool.shutdown()
                return
            if not pending and not in_flight:
                inference_finish(ijob, InferenceJob.SUCCEEDED, f"{len(inputs)} inputs done")
                pool.shutdown()
                return
            if batch_size != self.batch_size:
                self.batch_size, self.batch_wall = batch_size, None
            while pending and len(in_flight) < self.limit:
                batches, indices = [], []
                # Several batches to a Spark job while it stays short: a Spark job costs tens
                # of ms of the driver's and the executor's CPU, more than a small batch of a
                # small model. The controller may cut the group short (it counts queries).
                while (pending and len(batches) < self.pack()
                       and self.server.controller.allows(
                           self, len(indices) + min(batch_size, len(pending)))):
                    count = min(batch_size, len(pending))
                    taken = [pending.popleft() for _ in range(count)]
                    batches.append({
                        "model_key": model_key, "model": spec, "first": taken[0],
                        "items": [(i, reader.payload(inputs[i][1])) for i in taken],
                        "cores": 1, "driver_host": self.server.driver_host})
                    indices += taken
                if not batches:
                    break
                self.in_flight_queries += len(indices)
                in_flight[pool.submit(self.spark_job, batches)] = indices
            if not in_flight:
                time.sleep(0.05)

    def pack(self):
        """Batches per Spark job: as many as take about TASK_TARGET seconds (one until a
        batch of the current size has been timed), at most MAX_PACK."""
        if not self.batch_wall:
            return 1
        return max(1, min(MAX_PACK, int(TASK_TARGET / self.batch_wall)))


def last_line(error):
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1][:400] if lines else type(error).__name__


class Controller:
    """Keeps concurrent jobs' query rates together, whatever each model costs per query.

    Lockstep on queries submitted (completed, or in batches in flight), among the running
    jobs that have completed a batch (a job still waiting for its first is neither held back
    nor holds others back, so a slow first batch cannot stall the rest): of those, a job may
    submit a batch only while that keeps it within one batch (the largest batch size among
    them) of the one that has submitted least since that set last changed; that one may
    always submit, up to its in-flight limit (the runner's). A job whose batches cost more
    has more of them in flight at once; when it reaches its limit, the others wait for it.
    Over any stretch of time every job completes the same number of queries, give or take its
    batches in flight: equal rates, at capacity / the sum of the jobs' costs per query. Lockstep on queries completed instead lets the job ahead
    have only one batch in flight, which leaves the cores idle while batches travel; pacing
    on measured rates chases their noise on a busy machine.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.members = frozenset()
        self.base = {}
        self.last_log = 0.0

    def allows(self, runner, count):
        with self.lock:
            warm = frozenset(r for r in self.runners() if r.first_completion is not None)
            if runner not in warm or len(warm) < 2:
                return True
            if warm != self.members:
                # A job joined or left: compare progress from here on.
                self.members = warm
                self.base = {r: r.submitted for r in warm}
            progress = {r: r.submitted - self.base[r] for r in warm}
            slack = max(r.batch_size for r in warm)
            return progress[runner] + count <= min(progress.values()) + slack

    def runners(self):
        # A snapshot: the main thread adds and removes runners while runner threads ask.
        return [r for r in list(self.server.runners.values()) if not r.finished]

    def report(self):
        """Every 5 s, the jobs' rates over the last 10 s, into the driver's log."""
        now = time.monotonic()
        if now - self.last_log < 5:
            return
        self.last_log = now
        rates = [(r.ijob.pk, r.rate_over(CONTROL_WINDOW, now)) for r in self.runners()]
        rates = [(pk, rate) for pk, rate in rates if rate is not None]
        if len(rates) > 1:
            log.info("10 s rates: %s", ", ".join(f"job {pk} {rate:.2f}" for pk, rate in rates))


class Server:
    def __init__(self, sc):
        from django.conf import settings

        self.sc = sc
        self.stopping = threading.Event()
        self.driver_host = settings.DMARKET_DRIVER_HOST
        self.idle = settings.DMARKET_INFERENCE_IDLE
        cores = int(sc.getConf().get("spark.cores.max", "0") or 0)
        # Enough batches in flight to keep every core of the cluster busy while others travel
        # between the driver and the executors.
        self.max_in_flight = max(2, 2 * (cores or sc.defaultParallelism) + 2)
        self.runners = {}
        self.controller = Controller()
        self.controller.server = self
        self._executors = {}
        self._machines = {}

    def machine_of(self, executor, host):
        """The Machine that ran an executor: by its worker, from this application's
        executors list, else by its address."""
        from dmarket.cluster.billing import machine_resolver, master_workers

        if self._machines.get((executor, host)) is not None:
            return self._machines[(executor, host)]
        if executor not in self._executors:
            import requests

            try:
                url = (f"{self.sc.uiWebUrl}/api/v1/applications/{self.sc.applicationId}"
                       "/allexecutors")
                for info in requests.get(url, timeout=3).json():
                    self._executors[info["id"]] = info
            except (requests.RequestException, ValueError, TypeError, KeyError):
                pass
        info = self._executors.get(executor) or {"id": executor, "hostPort": f"{host}:0"}
        machine = self._machines[(executor, host)] = machine_resolver(master_workers())(info)
        return machine

    def serve(self):
        from django.db import close_old_connections

        from .lifecycle import inference_claim
        from .models import InferenceJob

        idle_since = time.monotonic()
        while not self.stopping.is_set():
            for ijob in InferenceJob.objects.filter(status=InferenceJob.RUNNING).exclude(
                    pk__in=list(self.runners)):
                # Claimed by a driver before this one: resumed from its outputs.
                self.start_runner(ijob)
            for pk in InferenceJob.objects.filter(status=InferenceJob.QUEUED).order_by(
                    "id").values_list("id", flat=True):
                ijob = inference_claim(pk)
                if ijob is not None:
                    self.start_runner(ijob)
            for pk in [pk for pk, r in self.runners.items() if r.finished]:
                del self.runners[pk]
            now = time.monotonic()
            self.controller.report()
            if self.runners:
                idle_since = now
            elif now - idle_since > self.idle:
                log.info("idle for %s s: stopping", self.idle)
                break
            close_old_connections()
            self.stopping.wait(0.25)
        self.stopping.set()
        for runner in list(self.runners.values()):
            runner.join(timeout=120)

    def start_runner(self, ijob):
        runner = Runner(self, ijob)
        self.runners[ijob.pk] = runner
        runner.start()
        log.info("inference job %s: serving (pool %s)", ijob.pk, ijob.pool)


def main():
    import django

    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    django.setup()
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK])
            if not cursor.fetchone()[0]:
                log.info("another inference server holds the lock: exiting")
                return 0
    from pyspark.sql import SparkSession

    session = SparkSession.builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    # The launchers spare this application when they police the cluster (only this driver
    # writes the inference directory).
    app_file = os.path.join(os.environ["DMARKET_INFERENCE_DIR"], "app_id")
    with open(app_file + ".tmp", "w") as f:
        f.write(session.sparkContext.applicationId)
    os.replace(app_file + ".tmp", app_file)
    server = Server(session.sparkContext)
    def terminate(*_):
        server.stopping.set()
        # Batches in flight when Spark's JVM goes away may never come back, and their
        # threads would hold this process (and its advisory lock) alive: a stopped driver
        # that has not left by itself within the grace is ended. Its unrecorded batches run
        # again under the next driver.
        timer = threading.Timer(STOP_GRACE, os._exit, [0])
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, terminate)
    log.info("inference server %s up, %s batches in flight per job at most",
             session.sparkContext.applicationId, server.max_in_flight)
    try:
        server.serve()
    finally:
        session.stop()
    return 0


if __name__ == "__main__":
    # --py-files puts the executors' copy of dmarket (executor.py only) on the path too; the
    # driver needs the whole of it.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    for name in [m for m in sys.modules if m == "dmarket" or m.startswith("dmarket.")]:
        del sys.modules[name]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dmarket.settings")
    # As the package's module, so that its relative imports work and Spark's pickles name
    # dmarket.inference.executor, the module the executors have.
    from dmarket.inference.server import main as package_main

    code = package_main()
    sys.stdout.flush()
    # Not sys.exit: that waits for the batch threads, which a dead JVM can leave blocked.
    os._exit(code)
