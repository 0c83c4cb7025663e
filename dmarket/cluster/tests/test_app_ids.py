"""Which applications are a job's (fast: the master's JSON as it answers, no cluster), and
what a driver's sandbox is made of."""

import os
import shutil
import subprocess

import pytest

from dmarket.cluster import sandbox, spark
from dmarket.cluster.launcher import job_profile
from dmarket.jobs.models import Job
from dmarket.jobs.tests.factories import make_job

pytestmark = pytest.mark.django_db


def app(app_id, user, start=1):
    return {"id": app_id, "user": user, "name": "innocent", "starttime": start}


def a_job(make_user, entry_file):
    return make_job(user=make_user("mallory"), name="j", entry_file=entry_file,
                    price_per_core_hour=1)


def log_of(job, name):
    job.events_dir.mkdir(parents=True, exist_ok=True)
    (job.events_dir / name).write_text("{}\n")


def test_an_application_is_the_jobs_when_it_shows_its_tag_and_its_log_is_in_its_directory(
        make_user, entry_file):
    job = a_job(make_user, entry_file)
    log_of(job, "app-20261203000000-0001.inprogress")
    state = {"activeapps": [app("app-20261203000000-0001", job.tag)], "completedapps": []}

    mine, impostors = spark.job_apps(job, state)

    assert [a["id"] for a in mine] == ["app-20261203000000-0001"]
    assert impostors == []


def test_a_log_named_after_another_jobs_application_does_not_make_it_the_jobs(
        make_user, entry_file):
    job = a_job(make_user, entry_file)
    # The job wrote a file named after the victim's application into its own directory.
    log_of(job, "app-20261203000000-0007")
    state = {"activeapps": [app("app-20261203000000-0007", "dmarket-job-999")]}

    assert spark.job_apps(job, state) == ([], [])


def test_an_application_showing_the_jobs_tag_without_its_log_is_an_impostor(
        make_user, entry_file):
    job = a_job(make_user, entry_file)
    state = {"activeapps": [app("app-20261203000000-0003", job.tag)]}

    mine, impostors = spark.job_apps(job, state)

    assert mine == [] and [a["id"] for a in impostors] == ["app-20261203000000-0003"]


def test_of_two_applications_the_oldest_comes_first(make_user, entry_file):
    job = a_job(make_user, entry_file)
    log_of(job, "app-20261203000000-0005")
    log_of(job, "app-20261203000000-0004.inprogress")
    state = {"activeapps": [app("app-20261203000000-0004", job.tag, start=5)],
             "completedapps": [app("app-20261203000000-0005", job.tag, start=2)]}

    mine, _ = spark.job_apps(job, state)

    assert [a["id"] for a in mine] == ["app-20261203000000-0005", "app-20261203000000-0004"]


def test_event_logs_prefer_the_final_log_and_ignore_links_and_other_names(
        make_user, entry_file, tmp_path):
    job = a_job(make_user, entry_file)
    log_of(job, "app-20261203000000-0001.inprogress")
    log_of(job, "app-20261203000000-0001")
    log_of(job, "notes.txt")
    (job.events_dir / "app-20261203000000-0002").symlink_to(tmp_path)

    assert spark.event_logs(job) == {
        "app-20261203000000-0001": job.events_dir / "app-20261203000000-0001"}


def test_the_driver_environment_is_an_allowlist(make_user, entry_file, monkeypatch, settings):
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    monkeypatch.setenv("DATABASE_URL", "postgres://x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "k")
    monkeypatch.setenv("LANG", "C.UTF-8")
    settings.DMARKET_SANDBOX_PASS_ENV = ["MY_VAR"]
    monkeypatch.setenv("MY_VAR", "1")
    job = a_job(make_user, entry_file)

    env = spark.driver_env(job)

    assert not {"SECRET_KEY", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert (env["LANG"], env["MY_VAR"], env["SPARK_USER"], env["HOME"]) == (
        "C.UTF-8", "1", job.tag, str(job.home_dir))


def test_a_jobs_sandbox_binds_its_own_directories_and_no_data_directory(
        make_user, entry_file, settings):
    job = a_job(make_user, entry_file)
    job.work_dir.mkdir(parents=True)
    argv = sandbox.bwrap_argv(job_profile(job))
    pairs = {(argv[i], argv[i + 1]) for i in range(len(argv) - 1)}

    for path in (job.output_dir, job.events_dir, job.home_dir):
        assert ("--bind", str(path)) in pairs
    assert ("--ro-bind", str(job.work_dir)) in pairs
    binds = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--bind", "--ro-bind")]
    for secret in (settings.DMARKET_FILES_DIR, settings.DATA_DIR, settings.DMARKET_EVENT_LOG_DIR):
        assert all(not b.startswith(str(secret)) or b.startswith(str(job.work_dir))
                   for b in binds), (secret, binds)
    assert "--unshare-pid" in argv and "--die-with-parent" in argv


def test_the_network_rules_refuse_the_database_and_the_spark_uis(settings):
    settings.DMARKET_SPARK_MASTER_UI = "http://127.0.0.1:8080"
    settings.DMARKET_HISTORY_URL = "http://10.1.2.3:18080"
    settings.DMARKET_SPARK_MASTER_URL = "spark://127.0.0.1:7077"
    settings.DMARKET_PUBLIC_URL = "http://127.0.0.1:8000"
    settings.DMARKET_SANDBOX_BLOCKED = ["127.0.0.1:6379"]
    rules = sandbox.nft_rules(999, sandbox.blocked_ports(["http://127.0.0.2:8081"]),
                              sandbox.served_ports()).splitlines()
    db_port = int(settings.DATABASES["default"]["PORT"] or 5432)

    body = [line.strip() for line in rules[3:-2]]
    blocked = sorted({8080, 18080, 8081, 6379, db_port})
    # Answering from a service's port is dropped first, then what it connected to is let
    # through, then connecting to a refused port is reset.
    assert body == (
        [f"meta skuid 999 tcp sport {p} drop" for p in sorted(set(blocked) | {7077, 8000})]
        + ["meta skuid 999 ct state established,related accept"]
        + [f"meta skuid 999 tcp dport {p} reject with tcp reset" for p in blocked])


def test_an_event_log_swapped_for_a_link_is_not_linked(make_user, entry_file, settings,
                                                        tmp_path):
    from dmarket.cluster.launcher import event_log_link

    settings.DMARKET_EVENT_LOG_DIR = tmp_path / "history"
    settings.DMARKET_EVENT_LOG_DIR.mkdir()
    secret = tmp_path / "secret"
    secret.write_text("server secret")
    job = a_job(make_user, entry_file)
    job.spark_app_id = "app-20261203000000-0001"
    job.events_dir.mkdir(parents=True)
    (job.events_dir / "app-20261203000000-0001").symlink_to(secret)
    event_log_link(job)
    assert list(settings.DMARKET_EVENT_LOG_DIR.iterdir()) == []

    (job.events_dir / "app-20261203000000-0001").unlink()
    (job.events_dir / "app-20261203000000-0001.inprogress").write_text("{}\n")
    event_log_link(job)
    linked = settings.DMARKET_EVENT_LOG_DIR / "app-20261203000000-0001.inprogress"
    assert not linked.is_symlink() and linked.read_text() == "{}\n"
    assert os.path.samefile(linked, job.events_dir / "app-20261203000000-0001.inprogress")


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:18080/api/v1/applications/app-VICTIM/environment#/logPage/?logType=stderr",
    "http://127.0.0.9:8081/logPage/?appId=app-1&executorId=0&logType=stderr",
    "http://127.0.0.2:8081/logPage/?appId=app-1&executorId=0&logType=../../etc",
    "file:///etc/passwd",
])
def test_an_executor_log_url_that_is_no_workers_is_refused(url):
    workers = [{"webuiaddress": "http://127.0.0.2:8081"}]
    with pytest.raises(spark.SparkUnavailable, match="not the log URL of a worker"):
        spark.worker_log(url, 0, 100, workers, "app-1", "0")


def test_an_executor_log_url_is_rebuilt_with_the_jobs_own_application(monkeypatch):
    asked = []

    class Answer:
        status_code, text = 200, "==== Bytes 0-2 of 2 of x ====\nhi"

    monkeypatch.setattr(spark.requests, "get", lambda url, timeout: asked.append(url) or Answer)
    workers = [{"webuiaddress": "http://127.0.0.2:8081"}]
    text = spark.worker_log("http://127.0.0.2:8081/logPage/?appId=app-OTHER&executorId=7"
                            "&logType=stdout", 0, 100, workers, "app-1", "0")

    assert asked == ["http://127.0.0.2:8081/log/?appId=app-1&executorId=0&logType=stdout"
                     "&offset=0&byteLength=100"]
    assert text == ("hi", 0, 2, 2)


def test_a_workers_executors_on_this_host_are_refused_the_same_ports_but_answer_from_theirs():
    rules = sandbox.nft_rules(999, [5432, 8081], [7077], worker_uid=998).splitlines()

    body = [line.strip() for line in rules[3:-2]]
    assert body[-3:] == ["meta skuid 998 ct state established,related accept",
                         "meta skuid 998 tcp dport 5432 reject with tcp reset",
                         "meta skuid 998 tcp dport 8081 reject with tcp reset"]
    assert not any("998 tcp sport" in line for line in body)


def test_a_second_application_of_its_own_is_killed_and_stops_the_job_an_impostor_does_not(
        make_user, entry_file, monkeypatch, settings):
    from dmarket.cluster.launcher import job_app_check

    killed = []
    monkeypatch.setattr(spark, "master_kill_app", killed.append)
    settings.DMARKET_APP_GRACE = 0
    job = a_job(make_user, entry_file)
    Job.objects.filter(pk=job.pk).update(status=Job.RUNNING,
                                         spark_app_id="app-20261203000000-0001")
    job.refresh_from_db()
    job.work_dir.mkdir(parents=True, exist_ok=True)
    log_of(job, "app-20261203000000-0001.inprogress")
    # Showing its tag with no log of its own: anyone can name an application so; killing it
    # must not let another job stop this one.
    state = {"activeapps": [app("app-20261203000000-0001", job.tag),
                            app("app-20261203000000-0009", job.tag)]}

    job_app_check(job, state)

    assert killed == ["app-20261203000000-0009"]
    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == (Job.RUNNING, False)

    log_of(job, "app-20261203000000-0002.inprogress")
    state["activeapps"].append(app("app-20261203000000-0002", job.tag, start=2))
    job_app_check(job, state)

    assert killed[1:] == ["app-20261203000000-0002", "app-20261203000000-0009"]
    job.refresh_from_db()
    assert (job.status, job.cancel_requested, job.stop_status, job.status_reason) == (
        Job.RUNNING, True, Job.FAILED, "the job started a second Spark application "
        "(app-20261203000000-0002), which the market killed")
    assert ("dmarket: application app-20261203000000-0002 killed: a job runs one application "
            "(app-20261203000000-0001)") in job.log_path.read_text()


def test_a_starting_jobs_own_slow_application_gets_the_verify_grace_before_it_is_killed(
        make_user, entry_file, monkeypatch, settings):
    """On a busy host its event log can show seconds after the master lists it (CI once
    killed a job's only application 2 s in, as an impostor)."""
    import time

    from dmarket.cluster.launcher import job_app_check

    killed = []
    monkeypatch.setattr(spark, "master_kill_app", killed.append)
    settings.DMARKET_APP_GRACE, settings.DMARKET_APP_VERIFY_GRACE = 2, 10
    job = a_job(make_user, entry_file)
    Job.objects.filter(pk=job.pk).update(status=Job.STARTING)
    job.refresh_from_db()
    job.work_dir.mkdir(parents=True, exist_ok=True)
    now_ms = time.time() * 1000
    state = {"activeapps": [app("app-20261203000000-0001", job.tag, start=now_ms - 5000)]}

    job_app_check(job, state)
    assert killed == []

    log_of(job, "app-20261203000000-0001.inprogress")
    job_app_check(job, state)
    job.refresh_from_db()
    assert (job.spark_app_id, job.status, killed) == ("app-20261203000000-0001", Job.RUNNING, [])

    # Past the verify grace with no log of its own, a tagged application is killed.
    other = make_job(user=job.user, name="j", entry_file=entry_file,
                     price_per_core_hour=1)
    other.work_dir.mkdir(parents=True, exist_ok=True)
    job_app_check(other, {"activeapps": [app("app-20261203000000-0002", other.tag,
                                             start=now_ms - 11000)]})
    assert killed == ["app-20261203000000-0002"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"),
                    reason="only root can install nftables rules")
def test_network_rules_flushed_or_replaced_behind_the_launchers_back_are_put_back(
        settings, monkeypatch):
    # A table of this test's own: the host's is the launchers'.
    table = f"dmarket_test_{os.getpid()}"
    monkeypatch.setattr(sandbox, "NFT_TABLE", table)
    settings.DMARKET_SANDBOX, settings.DMARKET_SANDBOX_USER = "auto", "nobody"
    settings.DMARKET_SPARK_MASTER_UI = "http://127.0.0.1:8080"

    def live():
        listed = subprocess.run(["nft", "list", "table", "inet", table], capture_output=True,
                                text=True)
        return listed.stdout if listed.returncode == 0 else None

    try:
        assert sandbox.network_apply() == ""
        first = live()
        assert "tcp dport 8080 reject" in first
        assert sandbox.network_apply() == "" and live() == first  # unchanged: left as it is

        # A firewall reload drops it.
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)
        assert sandbox.network_apply() == ""
        assert "tcp dport 8080 reject" in live()

        # Another launcher on this host put its own rules in place of these.
        other = sandbox.nft_rules(65534, [9090])
        subprocess.run(["nft", "-f", "-"], check=True, text=True,
                       input=f"delete table inet {table}\n{other}")
        assert "8080" not in live()
        assert sandbox.network_apply() == ""
        rules = live()
        assert "tcp dport 8080 reject" in rules and "9090" not in rules
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True)
