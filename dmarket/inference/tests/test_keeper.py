"""What the keeper ships to the executors (--py-files): executor.py alone, under the module
name the server's pickled function references carry, importable without Django or the rest of
dmarket. No Spark: a fresh Python with only the zip on its path stands in for an executor."""

import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dmarket.cluster.testing import wait_for
from dmarket.inference import executor, keeper

from .util import running

IMPORT = """
import pickle, sys
run_batches = pickle.loads(sys.stdin.buffer.read())
print(run_batches.__module__, sys.modules[run_batches.__module__].__file__,
      "django" in sys.modules, "dmarket.inference.server" in sys.modules)
"""


def test_the_executors_zip_holds_the_module_the_pickles_name(settings, tmp_path):
    settings.DMARKET_INFERENCE_DIR = tmp_path / "inference"
    path = keeper.executor_zip()
    assert sorted(zipfile.ZipFile(path).namelist()) == [
        "dmarket/__init__.py", "dmarket/inference/__init__.py", "dmarket/inference/executor.py"]

    result = subprocess.run(
        [sys.executable, "-c", IMPORT], input=pickle.dumps(executor.run_batches),
        capture_output=True, cwd=tmp_path, env={"PYTHONPATH": str(path)}, check=True)
    module, file, django, server = result.stdout.decode().split()
    assert module == "dmarket.inference.executor"
    assert file.startswith(str(path)) and (django, server) == ("False", "False")


@pytest.mark.django_db
def test_a_job_whose_billing_raises_is_backed_off_and_marked_the_others_are_billed(
        make_user, monkeypatch, settings):
    settings.DMARKET_ROW_POISON_AFTER = 2
    settings.DMARKET_ROW_BACKOFF_MAX = 0  # retried at every pass here
    poisoned, healthy = running(make_user("alice")), running(make_user("bob"))
    billed = []

    def bill(ijob):
        if ijob.pk == poisoned.pk:
            raise ValueError("a batch row the billing cannot read")
        billed.append(ijob.pk)

    monkeypatch.setattr(keeper, "inference_bill", bill)
    # A server is up: the pass bills and goes no further (no server is started here).
    monkeypatch.setattr(keeper, "server_alive", lambda: True)
    for _ in range(3):
        assert keeper.inference_tick() == 0

    assert billed == [healthy.pk] * 3
    poisoned.refresh_from_db()
    assert poisoned.status_reason == ("the inference keeper fails on this job and retries it: "
                                      "ValueError: a batch row the billing cannot read")
    healthy.refresh_from_db()
    assert healthy.status_reason == ""


@pytest.mark.parametrize("name", ["server.py", "driver.py"])
def test_a_server_left_by_a_previous_keeper_is_found_by_its_pid_file_also_under_its_old_name(
        name, settings, tmp_path, monkeypatch):
    settings.DMARKET_INFERENCE_DIR = tmp_path / "inference"
    monkeypatch.setattr(keeper, "_child", None)
    module = str(keeper.server_module.__file__).replace("server.py", name)
    # A process whose command line names the module, as spark-submit's does.
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", module])
    try:
        wait_for(lambda: module.encode() in Path(f"/proc/{process.pid}/cmdline").read_bytes(),
                 10, 0.01, "the process's command line")
        keeper.server_dir().mkdir(parents=True, exist_ok=True)
        (keeper.server_dir() / "driver.pid").write_text(str(process.pid))
        assert keeper.server_alive()
    finally:
        process.kill()
        process.wait()
    assert not keeper.server_alive()


def test_a_pid_file_naming_another_process_is_no_server(settings, tmp_path, monkeypatch):
    settings.DMARKET_INFERENCE_DIR = tmp_path / "inference"
    monkeypatch.setattr(keeper, "_child", None)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        keeper.server_dir().mkdir(parents=True, exist_ok=True)
        (keeper.server_dir() / "driver.pid").write_text(str(process.pid))
        assert not keeper.server_alive()
    finally:
        process.kill()
        process.wait()
