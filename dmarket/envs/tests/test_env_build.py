"""Environments asked for through the API and built by the launcher's loop: pip in the
sandbox, from a local index of wheels made here (no network); the same requirements are built
once and then reused; a failed build fails the jobs waiting for it, releasing their holds."""

import json
import sys
import tarfile

import pytest

from dmarket.cluster import env_builder as builder
from dmarket.cluster import sandbox
from dmarket.conftest import client_for
from dmarket.envs.models import Environment
from dmarket.envs.services import MANIFEST, archive_manifest, builder_python, env_unpack
from dmarket.envs.testing import local_index, make_wheel
from dmarket.files.tests.util import uploaded
from dmarket.jobs.models import Job
from dmarket.jobs.tests.util import credits_of

pytestmark = pytest.mark.django_db

REQUIREMENTS = "dmkprobe==1.0\n"
PYTHON, PLATFORM = builder_python()


@pytest.fixture
def index(settings, tmp_path):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "dmkprobe", "1.0",
               {"dmkprobe/__init__.py": "def hello():\n    return 'hello from dmkprobe'\n"})
    local_index(settings, wheels)
    settings.DMARKET_LAUNCHER_ID = "test-envs"
    return wheels


@pytest.fixture(autouse=True)
def no_leftover_builds():
    yield
    for child, _, cgroups in list(builder._builds.values()):
        child.kill()
        child.wait()
        sandbox.cgroups_remove(cgroups)
    builder._builds.clear()


def build_until_done(timeout=120):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        builder.env_build_tick("test-envs")
        if not Environment.objects.filter(status=Environment.BUILDING).exists():
            return
        time.sleep(0.2)
    raise AssertionError("the build did not end")


def bad(field, message):
    return {"detail": f"{field}: {message}", "errors": {field: [message]}}


def ask(user, requirements=REQUIREMENTS):
    return client_for(user).post("/api/envs/", {"requirements": requirements}, format="json")


def test_an_environment_is_built_once_and_then_reused(alice, bob, index):
    if sandbox.check()[1]:
        pytest.skip(f"no sandbox here: {sandbox.check()[1]}")
    first = ask(alice, "DMKProbe == 1.0\n")
    assert first.status_code == 202
    body = first.json()
    assert {k: body[k] for k in ("status", "requirements", "python", "platform", "size",
                                 "sha256", "error", "uses", "built_at")} == {
        "status": "BUILDING", "requirements": "dmkprobe==1.0\n", "python": PYTHON,
        "platform": PLATFORM, "size": None, "sha256": "", "error": "", "uses": 1,
        "built_at": None}

    build_until_done()

    env = Environment.objects.get()
    assert env.status == Environment.READY, env.error
    assert archive_manifest(env.archive_path) == {
        "format": 1, "requirements": "dmkprobe==1.0\n", "python": PYTHON, "platform": PLATFORM}
    with tarfile.open(env.archive_path) as tar:
        names = tar.getnames()
    assert names[0] == MANIFEST
    assert "site/dmkprobe/__init__.py" in names
    site = env_unpack(env.archive_path, env.sha256)
    assert (site / "dmkprobe" / "__init__.py").read_text().startswith("def hello")
    started = env.build_started_at

    # Another user, the same set written otherwise: the stored environment, no build.
    again = ask(bob, "dmkprobe==1.0  # the probe\n")
    assert again.status_code == 200
    assert again.json()["key"] == env.key
    assert again.json()["status"] == "READY"
    assert again.json()["uses"] == 2
    builder.env_build_tick("test-envs")
    env.refresh_from_db()
    assert (env.build_started_at, Environment.objects.count()) == (started, 1)

    detail = client_for(bob).get(f"/api/envs/{env.key}/")
    assert detail.status_code == 200
    assert detail.json() == {**again.json(), "uses": 2}

    saved = client_for(bob).post(f"/api/envs/{env.key}/save/", {"name": "envs/probe.tar.gz"},
                                 format="json")
    assert saved.status_code == 201
    assert (saved.json()["uri"], saved.json()["sha256"], saved.json()["size"]) == (
        "dmarket://envs/probe.tar.gz@1", env.sha256, env.size)


def test_with_an_object_store_the_built_environment_is_fetched_from_it(alice, index, s3_store):
    if sandbox.check()[1]:
        pytest.skip(f"no sandbox here: {sandbox.check()[1]}")
    import hashlib

    import requests

    response = client_for(alice).post("/api/jobs/", {
        "name": "needs", "entry_file": "https://example.org/app.py",
        "requirements": REQUIREMENTS, "max_credits": "3"}, format="json")
    assert response.status_code == 201, response.content

    build_until_done()

    env = Environment.objects.get()
    assert (env.status, env.blob) == (Environment.READY, f"envs/{env.key}.tar.gz")
    job = Job.objects.get()
    fetched = client_for(None).get(
        f"/api/jobs/{job.pk}/environment/{job.files_token}/env-{env.key[:16]}.tar.gz")
    assert fetched.status_code == 302
    body = requests.get(fetched["Location"], timeout=10).content
    assert hashlib.sha256(body).hexdigest() == env.sha256


def test_a_failed_build_fails_the_jobs_waiting_for_it(alice, index):
    if sandbox.check()[1]:
        pytest.skip(f"no sandbox here: {sandbox.check()[1]}")
    response = client_for(alice).post("/api/jobs/", {
        "name": "needs", "entry_file": "https://example.org/app.py",
        "requirements": "no-such-package==9.9\n", "max_credits": "3"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["status_reason"] == "waiting: its environment is being built"
    assert credits_of(alice)["held"] == "3.000000"

    build_until_done()

    env = Environment.objects.get()
    assert env.status == Environment.FAILED
    assert "pip exited with 1" in env.error
    assert "no-such-package" in env.error
    job = Job.objects.get()
    assert job.status == Job.FAILED
    assert job.status_reason.startswith("its environment could not be built: pip exited with 1")
    assert credits_of(alice)["held"] == "0.000000"

    # Asked for again, it is built again (the index may have been down).
    assert ask(alice, "no-such-package==9.9\n").status_code == 202
    assert Environment.objects.get().status == Environment.BUILDING


def test_bad_requirements_are_a_400_naming_the_line(alice):
    response = ask(alice, "numpy\n--extra-index-url http://evil.example/\n")
    assert response.status_code == 400
    assert response.json() == bad("requirements", (
        "line 2: '--extra-index-url' is a pip option; only package requirements are allowed "
        "(the index is the market's)"))
    assert Environment.objects.count() == 0


def test_a_job_with_bad_requirements_is_a_400_and_writes_nothing(alice):
    response = client_for(alice).post("/api/jobs/", {
        "name": "x", "entry_file": "https://example.org/app.py",
        "requirements": "x @ https://example.org/x.whl\n"}, format="json")
    assert response.status_code == 400
    assert response.json() == bad("requirements", (
        "line 1: 'x @ https://example.org/x.whl' names a URL or path; only package names and "
        "versions from the index are allowed"))
    assert (Job.objects.count(), Environment.objects.count()) == (0, 0)


def test_requirements_and_a_packed_env_together_are_a_400(alice):
    response = client_for(alice).post("/api/jobs/", {
        "name": "x", "entry_file": "https://example.org/app.py", "requirements": "numpy\n",
        "env": "dmarket://envs/e.tar.gz"}, format="json")
    assert response.status_code == 400
    assert response.json() == bad("env", "Give requirements or a packed env, not both.")


def test_a_packed_env_must_be_one(alice, files_dir):
    uploaded(alice, "envs/fake.tar.gz", b"not a tarball")
    response = client_for(alice).post("/api/jobs/", {
        "name": "x", "entry_file": "https://example.org/app.py",
        "env": "dmarket://envs/fake.tar.gz"}, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["env"]
    assert response.json()["errors"]["env"][0].startswith(
        "dmarket://envs/fake.tar.gz@1: not a packed environment (a tar.gz from dmarket env "
        "build)")
    assert Job.objects.count() == 0


def test_a_packed_env_must_name_a_dmarket_file(alice):
    response = client_for(alice).post("/api/jobs/", {
        "name": "x", "entry_file": "https://example.org/app.py",
        "env": "https://example.org/env.tar.gz"}, format="json")
    assert response.status_code == 400
    assert response.json() == bad("env", (
        "'https://example.org/env.tar.gz': give a dmarket:// file (dmarket files put, or let "
        "dmarket jobs submit upload it)."))


def test_a_working_dir_must_be_a_zip(alice, files_dir):
    uploaded(alice, "wd.zip", b"not a zip")
    response = client_for(alice).post("/api/jobs/", {
        "name": "x", "entry_file": "https://example.org/app.py",
        "working_dir": "dmarket://wd.zip"}, format="json")
    assert response.status_code == 400
    assert response.json() == bad("working_dir",
                                  "dmarket://wd.zip@1: not a zip (File is not a zip file)")


def test_a_packed_env_with_a_bad_manifest_is_a_400(alice, files_dir):
    import io

    data = json.dumps({"python": "3.11" * 10, "platform": "linux-x86_64"}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    uploaded(alice, "envs/odd.tar.gz", buffer.getvalue())
    response = client_for(alice).post("/api/jobs/", {
        "name": "x", "entry_file": "https://example.org/app.py",
        "env": "dmarket://envs/odd.tar.gz"}, format="json")
    assert response.status_code == 400
    assert response.json() == bad("env", (
        "dmarket://envs/odd.tar.gz@1: its dmarket-env.json names no python (e.g. 3.11) and "
        "platform (e.g. linux-x86_64)"))


def test_a_user_may_have_so_many_builds_at_once(alice, bob, settings):
    settings.DMARKET_ENV_MAX_BUILDING_PER_USER = 2
    assert ask(alice, "a==1\n").status_code == 202
    assert ask(alice, "a==2\n").status_code == 202
    third = ask(alice, "a==3\n")
    assert third.status_code == 429
    assert third.json() == {"detail": "You have 2 environments being built; wait for one to "
                                      "finish."}
    # One being built already costs nothing more; another user has slots of their own.
    assert ask(alice, "a==1\n").status_code == 202
    assert ask(bob, "a==3\n").status_code == 202
    job = client_for(alice).post("/api/jobs/", {
        "name": "x", "entry_file": "https://example.org/app.py", "requirements": "a==4\n"},
        format="json")
    assert job.status_code == 429
    assert Environment.objects.count() == 3
    assert Job.objects.count() == 0


def test_saving_an_unbuilt_environment_is_a_409(alice):
    key = ask(alice).json()["key"]
    response = client_for(alice).post(f"/api/envs/{key}/save/", {"name": "e.tar.gz"},
                                      format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": f"Environment {key} is BUILDING, not READY."}


def test_an_unknown_environment_is_a_404(alice):
    response = client_for(alice).get("/api/envs/nope/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No environment nope."}


def test_the_api_needs_a_user(db):
    response = client_for().post("/api/envs/", {"requirements": "numpy"}, format="json")
    assert response.status_code == 401
    assert json.loads(response.content) == {
        "detail": "Authentication credentials were not provided."}


def test_a_restarted_launcher_ends_its_orphaned_build_before_building_again(alice, index):
    if sandbox.check()[1]:
        pytest.skip(f"no sandbox here: {sandbox.check()[1]}")
    import subprocess

    ask(alice)
    env = Environment.objects.get()
    Environment.objects.filter(pk=env.pk).update(builder="test-envs")
    env.build_dir.mkdir(parents=True)
    # A process that names the build directory, as the wrapper of a build does.
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)",
                               str(env.build_dir)], start_new_session=True)
    (env.build_dir / "wrapper.pid").write_text(str(orphan.pid))

    build_until_done()

    assert orphan.wait(timeout=10) == -9
    env.refresh_from_db()
    assert env.status == Environment.READY, env.error
