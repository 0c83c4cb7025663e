"""A SeaweedFS cluster of scripts/start_storage.sh for tests, on free ports and in a directory
of its own, so that it runs beside any other (a demo's on the default ports)."""

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import boto3
from botocore.config import Config

HOME = Path(__file__).resolve().parents[3]
HOST = "127.0.0.1"
VOLUME_ADDRESSES = ["127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"]


def weed():
    """The weed binary start_storage.sh would use, or None."""
    local = HOME / ".venv" / "bin" / "weed"
    return str(local) if os.access(local, os.X_OK) else shutil.which("weed")


def _free(address, port):
    with socket.socket() as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def free_port(addresses, taken=()):
    """A port free on every address, as is its gRPC port, 10000 above; both below the kernel's
    ephemeral ports (32768 up). A client's connection could take one meanwhile, and these
    ports are closed to sandboxed jobs: a PySpark driver whose JVM gateway drew one was
    refused its own gateway (seen once in CI, when gRPC ports reached 40000)."""
    for _ in range(200):
        port = random.randrange(12000, 22000)
        if port not in taken and all(_free(a, p) for a in addresses for p in (port, port + 10000)):
            return port
    raise RuntimeError(f"no free port pair on {addresses}")


class SeaweedCluster:
    def __init__(self, base_dir):
        self.base_dir = Path(base_dir)
        self.storage_dir = self.base_dir / "seaweedfs"
        # Always this directory, also for stop(): never the default one, a demo's.
        self.settings = {
            "DMARKET_DATA_DIR": str(self.base_dir / "data"),  # env.sh makes run/ and log/ there
            "DMARKET_STORAGE_DIR": str(self.storage_dir),
        }
        self.env = {}

    def _environ(self):
        return {**os.environ, **self.settings}

    def _run(self, script, *args):
        result = subprocess.run([str(HOME / "scripts" / script), *args], env=self._environ(),
                                capture_output=True, text=True, timeout=120)
        if result.returncode:
            logs = "".join(f"\n--- {log.name}\n{log.read_text()[-3000:]}"
                           for log in sorted((self.storage_dir / "log").glob("*.log")))
            raise RuntimeError(f"{script} failed ({result.returncode}):\n"
                               f"{result.stdout}{result.stderr}{logs}")
        return result.stdout

    def start(self):
        ports = []
        for _ in range(3):
            ports.append(free_port([HOST], ports))
        volume_port = free_port(VOLUME_ADDRESSES)
        self.settings.update({
            "DMARKET_STORAGE_HOST": HOST,
            "DMARKET_STORAGE_MASTER_PORT": str(ports[0]),
            "DMARKET_STORAGE_FILER_PORT": str(ports[1]),
            "DMARKET_STORAGE_S3_PORT": str(ports[2]),
            "DMARKET_STORAGE_VOLUME_ADDRESSES": " ".join(VOLUME_ADDRESSES),
            "DMARKET_STORAGE_VOLUME_PORT": str(volume_port),
            "DMARKET_STORAGE_VOLUME_MAX": "20",
            "DMARKET_S3_BUCKET": "dmarket-test",
        })
        self._run("start_storage.sh")
        self.env = {}
        for line in (self.storage_dir / "storage.env").read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            self.env[name] = value
        return self

    def _pid(self, name):
        return int((self.storage_dir / "run" / f"{name}.pid").read_text())

    @property
    def volume_pids(self):
        return [self._pid(f"volume{i + 1}") for i in range(len(VOLUME_ADDRESSES))]

    def volume_server(self, i):
        """Volume server I's address as the master names it: "127.0.0.21:PORT"."""
        return f"{VOLUME_ADDRESSES[i]}:{self.settings['DMARKET_STORAGE_VOLUME_PORT']}"

    @property
    def volume_servers(self):
        return [self.volume_server(i) for i in range(len(VOLUME_ADDRESSES))]

    def kill_volume(self, i):
        """SIGKILL volume server I (from 0), and wait until it is gone."""
        pid = self.volume_pids[i]
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                return
            if state == "Z":
                return
            time.sleep(0.05)
        raise RuntimeError(f"volume server {i} (pid {pid}) did not die")

    def start_volume(self, i=None):
        """Starts again whatever of the cluster is not running (start_storage.sh does only
        that), volume server I among them, and waits until all have registered."""
        self._run("start_storage.sh")

    def s3(self, **config):
        """A boto3 S3 client for the gateway; CONFIG: botocore Config arguments."""
        env = self.env
        return boto3.client(
            "s3", endpoint_url=env["DMARKET_S3_ENDPOINT"], region_name=env["DMARKET_S3_REGION"],
            aws_access_key_id=env["DMARKET_S3_ACCESS_KEY"],
            aws_secret_access_key=env["DMARKET_S3_SECRET_KEY"], config=Config(**config))

    def stop(self):
        self._run("stop_storage.sh", "--purge")
