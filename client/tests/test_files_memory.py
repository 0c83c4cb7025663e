"""A 300 MB file up and down between the real client (a process of its own) and the real
server (gunicorn, run as scripts/start_central_server.sh runs it): neither holds the file in
memory. Their peak memory is measured and printed (run with -s to see it)."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model
from django.db import connection

from dmarket.accounts.models import ApiToken
from dmarket.cluster.testing import database_url, free_port, wait_for
from dmarket.files.models import FileVersion

ROOT = Path(__file__).resolve().parents[2]
SIZE_MB = 300
# Generous: the client's baseline is about 30 MB, and a server worker's growth is a few MB.
CLIENT_PEAK_LIMIT_MB = 100
SERVER_GROWTH_LIMIT_MB = 100
# The client, reporting its own peak resident memory (VmHWM) as it exits.
# (VmHWM, not getrusage's ru_maxrss: Linux carries that over from the parent across exec.)
CLIENT = """
import atexit, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("peak_rss_kb=%d\\n" % int(line.split()[1]))
atexit.register(peak)
from dmarket_client.cli import main
main(sys.argv[1:])
"""

pytestmark = pytest.mark.django_db(transaction=True)


def status_kb(pid, field):
    """VmHWM (peak) or VmRSS (now) of a process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def children(pid):
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def gunicorn(tmp_path):
    """The server on the test database: (url, the pid of its one worker process)."""
    if connection.vendor != "postgresql":
        pytest.skip("the server process needs the test database on PostgreSQL")
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url(), DJANGO_SETTINGS_MODULE="dmarket.settings",
               DMARKET_DATA_DIR=str(tmp_path / "server-data"), SECRET_KEY="memory test",
               DMARKET_STORAGE_QUOTA_MB=str(2 * SIZE_MB))
    log = open(tmp_path / "gunicorn.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "dmarket.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--worker-class", "gthread", "--threads", "4", "--timeout", "120"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up():
        assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
        try:
            return requests.get(url + "/api/schema/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, 60, what="gunicorn")
        (worker,) = children(server.pid)
        yield url, worker
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def run_client(url, token, tmp_path, *args):
    env = dict(os.environ, DMARKET_SERVER=url, DMARKET_TOKEN=token,
               DMARKET_CONFIG=str(tmp_path / "config.json"))
    done = subprocess.run([sys.executable, "-c", CLIENT, *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    peak = int(done.stderr.rsplit("peak_rss_kb=", 1)[1].split()[0])
    return done.stdout, peak


def test_300_mb_round_trip_in_bounded_memory(gunicorn, tmp_path):
    url, worker = gunicorn
    user = get_user_model().objects.create_user("ada", "a@example.org", "a long password 1")
    token = ApiToken.issue(user)[1]
    big = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(big, "wb") as f:
        for _ in range(SIZE_MB):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            f.write(chunk)
    # A first request, so that the worker has loaded everything it serves with.
    requests.get(url + "/api/files/", headers={"Authorization": f"Token {token}"}, timeout=10)
    server_before = status_kb(worker, "VmHWM")

    started = time.monotonic()
    _, put_peak = run_client(url, token, tmp_path, "files", "put", str(big), "data/big.bin")
    put_seconds = time.monotonic() - started
    back = tmp_path / "back.bin"
    started = time.monotonic()
    _, get_peak = run_client(url, token, tmp_path, "files", "get", "data/big.bin", str(back))
    get_seconds = time.monotonic() - started
    server_after = status_kb(worker, "VmHWM")

    version = FileVersion.objects.get()
    assert (version.size, version.sha256) == (SIZE_MB * 1024 * 1024, digest.hexdigest())
    assert back.stat().st_size == big.stat().st_size
    with open(back, "rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == digest.hexdigest()
    growth_mb = (server_after - server_before) / 1024
    print(f"\n300 MB round trip: put {put_seconds:.1f} s, get {get_seconds:.1f} s; "
          f"client peak RSS: put {put_peak / 1024:.1f} MB, get {get_peak / 1024:.1f} MB; "
          f"server worker peak RSS {server_before / 1024:.1f} MB before, "
          f"{server_after / 1024:.1f} MB after (growth {growth_mb:.1f} MB)")
    assert put_peak / 1024 < CLIENT_PEAK_LIMIT_MB
    assert get_peak / 1024 < CLIENT_PEAK_LIMIT_MB
    assert growth_mb < SERVER_GROWTH_LIMIT_MB
    # 900 MB: not left for pytest's kept temporary directories.
    for path in (big, back):
        path.unlink()
    shutil.rmtree(tmp_path / "server-data" / "files")
