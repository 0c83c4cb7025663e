"""dmarket env build, and jobs submit -r / --env / --working-dir, against the real server (the
launcher's build loop runs in this process, pip from a local index of wheels made here)."""

import threading
import time
import zipfile

import pytest

from dmarket.cluster import env_builder as builder
from dmarket.cluster import sandbox
from dmarket.envs.models import Environment
from dmarket.envs.testing import local_index, make_wheel
from dmarket.files.models import FileVersion
from dmarket.jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def index(settings, tmp_path):
    make_wheel(tmp_path / "wheels", "dmkprobe", "1.0",
               {"dmkprobe/__init__.py": "X = 1\n"})
    local_index(settings, tmp_path / "wheels")
    (tmp_path / "requirements.txt").write_text("dmkprobe==1.0\n")
    return tmp_path / "requirements.txt"


@pytest.fixture
def building_launcher():
    """The launcher's build loop in a thread while the CLI waits for the build."""
    stop = threading.Event()

    def loop():
        from django.db import connection

        try:
            while not stop.is_set():
                builder.env_build_tick("client-tests")
                time.sleep(0.2)
        finally:
            connection.close()

    thread = threading.Thread(target=loop)
    thread.start()
    yield
    stop.set()
    thread.join()
    for child, _, cgroups in list(builder._builds.values()):
        child.kill()
        child.wait()
        sandbox.cgroups_remove(cgroups)
    builder._builds.clear()


def test_env_build_builds_stores_and_then_reuses(dmarket, dmarket_json, user, index,
                                                 building_launcher):
    if sandbox.check()[1]:
        pytest.skip(f"no sandbox here: {sandbox.check()[1]}")
    first = dmarket_json("env", "build", "-r", index, "envs/probe.tar.gz")
    env = Environment.objects.get()
    assert (first["status"], first["reused"], first["uri"], first["key"]) == (
        "READY", False, "dmarket://envs/probe.tar.gz@1", env.key)
    stored = FileVersion.objects.get(file__name="envs/probe.tar.gz")
    assert (stored.sha256, stored.size) == (env.sha256, env.size)

    again = dmarket("env", "build", "-r", index, "envs/probe.tar.gz")
    assert again.exit_code == 0, again.stderr
    assert again.stdout.startswith(f"reused the stored environment {env.key[:12]} ")
    assert again.stdout.rstrip().endswith("stored as dmarket://envs/probe.tar.gz@2")

    job = dmarket_json("jobs", "submit", "https://example.org/app.py",
                       "--env", "envs/probe.tar.gz")
    assert job["env"] == "dmarket://envs/probe.tar.gz@2"


def test_env_build_wants_a_tar_gz_name(dmarket, user, index):
    result = dmarket("env", "build", "-r", index, "envs/probe.zip")
    assert result.exit_code == 2
    assert "a packed environment's name ends in .tar.gz" in result.stderr


def test_submit_with_requirements_sends_them(dmarket_json, user, index):
    job = dmarket_json("jobs", "submit", "https://example.org/app.py", "-r", index)
    env = Environment.objects.get()
    assert (job["requirements"], job["environment"], job["status_reason"]) == (
        "dmkprobe==1.0\n", env.key, "waiting: its environment is being built")


def test_requirements_and_env_together_are_a_usage_error(dmarket, user, index):
    result = dmarket("jobs", "submit", "https://example.org/app.py", "-r", index,
                     "--env", "envs/x.tar.gz")
    assert result.exit_code == 2
    assert "give --requirements or --env, not both" in result.stderr
    assert Job.objects.count() == 0


def test_working_dir_is_packed_without_what_dmarketignore_names(dmarket_json, user, tmp_path):
    work = tmp_path / "project"
    (work / "data").mkdir(parents=True)
    (work / "data" / "values.txt").write_text("1 2 3\n")
    (work / "model.py").write_text("W = 1\n")
    (work / "big.bin").write_bytes(b"x" * 1000)
    (work / "__pycache__").mkdir()
    (work / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    (work / ".dmarketignore").write_text("*.bin\n")
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key=...\n")
    (work / "creds").symlink_to(secret)

    job = dmarket_json("jobs", "submit", "https://example.org/app.py", "--working-dir", work)
    again = dmarket_json("jobs", "submit", "https://example.org/app.py", "--working-dir", work)

    assert job["working_dir"].startswith("dmarket://job-files/")
    assert job["working_dir"].endswith("/workdir.zip@1")
    # The same files pack to the same bytes: the stored zip is named again, not re-sent.
    assert again["working_dir"] == job["working_dir"]
    version = FileVersion.objects.get(file__name__endswith="workdir.zip")
    with zipfile.ZipFile(version.local_path()) as z:
        assert sorted(z.namelist()) == ["data/values.txt", "model.py"]
        assert z.read("data/values.txt") == b"1 2 3\n"


def test_a_working_dir_that_is_not_there_is_a_usage_error(dmarket, user, tmp_path):
    result = dmarket("jobs", "submit", "https://example.org/app.py",
                     "--working-dir", tmp_path / "nope")
    assert result.exit_code == 2
    assert "no such directory here" in result.stderr
