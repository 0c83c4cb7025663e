"""A real local Spark standalone cluster for tests and benchmarks: a master, a history server
and workers, each on its own 127.0.0.x address and on free ports, closed as the market's is
(Spark authentication with a secret of its own, RPC encryption unless turned off)."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from .spark import spark_home


def database_url():
    """The URL of the database Django is connected to (the test database, in a test), for a
    server process started beside the test."""
    from urllib.parse import quote

    from django.db import connection

    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return (f"postgres://{quote(db['USER'], safe='')}{password}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}")


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def state_summary(state):
    """The master's workers and running applications, one line each, for a failure's
    message."""
    if state is None:
        return "the master does not answer"
    lines = [f"worker {w.get('host')} {w.get('state')}: cores {w.get('coresused')}/"
             f"{w.get('cores')}, memory {w.get('memoryused')}/{w.get('memory')} MB"
             for w in state.get("workers", [])]
    lines += [f"application {a.get('id')} {a.get('name')!r} of {a.get('user')}: "
              f"{a.get('state')}, {a.get('cores')} cores" for a in state.get("activeapps", [])]
    return "\n".join(lines)


class LocalCluster:
    def __init__(self, root, host="127.0.0.1", rpc_encryption=True):
        # The master's and history server's address (workers reach the master there).
        self.host = host
        # What the server's settings must hold for its drivers to join (DMARKET_SPARK_SECRET).
        self.secret = secrets.token_hex(32)
        self.rpc_encryption = rpc_encryption
        self.root = Path(root)
        self.events = self.root / "events"
        self.logs = self.root / "logs"
        self.master_port = free_port(host)
        self.master_ui_port = free_port(host)
        self.history_port = free_port(host)
        self.processes = {}

    @property
    def master_url(self):
        return f"spark://{self.host}:{self.master_port}"

    @property
    def master_ui(self):
        return f"http://{self.host}:{self.master_ui_port}"

    @property
    def history_url(self):
        return f"http://{self.host}:{self.history_port}"

    def _alive(self, name):
        process = self.processes[name]
        if process.poll() is not None:
            log = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"Spark {name} exited with {process.returncode}:\n{log}")
        return True

    def security_opts(self):
        opts = "-Dspark.authenticate=true"
        if self.rpc_encryption:
            opts += " -Dspark.network.crypto.enabled=true"
        return opts

    def _start(self, name, address, *args, env=None, prefix=(), secret=True):
        """Start a daemon; `prefix` goes before the command (e.g. ip netns exec NAME);
        secret=False: without the cluster's secret (as an outsider's worker would be)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        full_env = dict(os.environ, SPARK_HOME=str(spark_home()), SPARK_LOCAL_IP=address,
                        SPARK_LOCAL_HOSTNAME=address, PYSPARK_PYTHON=sys.executable,
                        SPARK_DAEMON_JAVA_OPTS="-Dspark.port.maxRetries=0 "
                                               "-Dspark.master.rest.enabled=false "
                                               + self.security_opts(),
                        **(env or {}))
        full_env.pop("_SPARK_AUTH_SECRET", None)
        if secret:
            full_env["_SPARK_AUTH_SECRET"] = self.secret
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                [*prefix, str(spark_home() / "bin" / "spark-class"), *args], env=full_env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.processes[name] = process
        return process

    def start(self, workers=()):
        """Start the master and history server, then the workers: (address, cores, memory_mb)."""
        self.events.mkdir(parents=True, exist_ok=True)
        self._start("master", self.host, "org.apache.spark.deploy.master.Master",
                    "--host", self.host, "--port", str(self.master_port),
                    "--webui-port", str(self.master_ui_port))
        history_opts = (f"-Dspark.history.fs.logDirectory={self.events.as_uri()} "
                        "-Dspark.history.fs.update.interval=1s "
                        f"-Dspark.history.ui.port={self.history_port}")
        self._start("history", self.host, "org.apache.spark.deploy.history.HistoryServer",
                    env={"SPARK_HISTORY_OPTS": history_opts})
        wait_for(lambda: self._alive("master") and self._get(self.master_ui + "/json/"), 90,
                 what="the Spark master")
        for address, cores, memory_mb in workers:
            self.start_worker(address, cores, memory_mb)
        wait_for(lambda: self._alive("history")
                 and self._get(self.history_url + "/api/v1/applications") is not None, 90,
                 what="the Spark history server")
        return self

    def start_worker(self, address, cores, memory_mb, netns=None, secret=True, wait=True):
        """Start a worker on `address`; with netns, inside that network namespace (where
        `address` lives), so that it reaches the master and the server only over the network.
        secret=False: without the cluster's secret; wait=False: do not wait for it to join."""
        work_dir = self.root / "work" / address
        work_dir.mkdir(parents=True, exist_ok=True)
        prefix = ("ip", "netns", "exec", netns) if netns else ()
        # A port free here is free in a fresh namespace too, where nothing else listens.
        ui_port = free_port() if netns else free_port(address)
        self._start(f"worker-{address}", address, "org.apache.spark.deploy.worker.Worker",
                    self.master_url, "--host", address, "--cores", str(cores),
                    "--memory", f"{memory_mb}m", "--work-dir", str(work_dir),
                    "--webui-port", str(ui_port), prefix=prefix, secret=secret)
        if not wait:
            return
        wait_for(lambda: self._alive(f"worker-{address}") and self.worker(address), 90,
                 what=f"worker {address} to register")

    def start_sandboxed_worker(self, address, cores, memory_mb):
        """A worker as a contributor's agent runs it: in its sandbox
        (dmarket_client.worker_sandbox), every executor in one of its own."""
        from dmarket_client.agent import spark_class
        from dmarket_client.worker_sandbox import WorkerSandbox

        box = WorkerSandbox(self.root / "machines" / address, memory_mb, sys.executable)
        box.prepare()
        name = f"worker-{address}"
        self.logs.mkdir(parents=True, exist_ok=True)
        argv = [str(spark_class()), "org.apache.spark.deploy.worker.Worker", self.master_url,
                "--host", address, "--cores", str(cores), "--memory", f"{memory_mb}m",
                "--work-dir", str(box.work), "--webui-port", str(free_port(address))]
        env = dict(os.environ, SPARK_LOCAL_IP=address, SPARK_LOCAL_HOSTNAME=address,
                   PYSPARK_PYTHON=sys.executable, _SPARK_AUTH_SECRET=self.secret,
                   SPARK_WORKER_OPTS=self.security_opts())
        with open(self.logs / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                box.command(argv, env), env=box.env(env), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=box.preexec)
        wait_for(lambda: self._alive(name) and self.worker(address), 90,
                 what=f"sandboxed worker {address} to register")
        return box

    def worker(self, address):
        """The master's ALIVE entry for the worker on `address`, if any."""
        state = self._get(self.master_ui + "/json/") or {}
        for worker in state.get("workers", []):
            if worker["host"] == address and worker["state"] == "ALIVE":
                return worker
        return None

    def summary(self):
        return state_summary(self._get(self.master_ui + "/json/"))

    def idle(self, kill, timeout=60):
        """Kill (with `kill(app_id)`) every application the master runs, left by an earlier
        test that failed, and wait until every live worker's cores are free again."""
        state = self._get(self.master_ui + "/json/") or {}
        for app in state.get("activeapps", []):
            kill(app["id"])

        def free():
            state = self._get(self.master_ui + "/json/")
            return state is not None and not state["activeapps"] and all(
                w["coresused"] == 0 for w in state["workers"] if w["state"] == "ALIVE")
        try:
            wait_for(free, timeout, what="an idle cluster")
        except TimeoutError as e:
            raise TimeoutError(f"{e}:\n{self.summary()}") from None

    def kill_worker(self, address):
        """SIGKILL the worker and its executors, as when the computer loses power."""
        process = self.processes.pop(f"worker-{address}")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self):
        for name in sorted(self.processes, key=lambda n: not n.startswith("worker")):
            process = self.processes[name]
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _get(url):
        # Not JSON: something else answered on the port while the daemon starts; not up yet.
        try:
            response = requests.get(url, timeout=2)
            return response.json() if response.status_code == 200 else None
        except requests.RequestException:
            return None
