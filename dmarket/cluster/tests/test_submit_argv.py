"""spark-submit's argv for a job's own Spark properties and main class (no Spark runs here)."""

from dmarket.cluster import spark
from dmarket.jobs.models import Job
from dmarket.jobs.tests.util import submitted

JAR = "https://example.org/apps/app.jar"


def confs(argv):
    """Every --conf of the argv as (key, value), in order."""
    pairs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--conf"]
    return [tuple(p.split("=", 1)) for p in pairs]


def test_the_jobs_properties_reach_spark_submit(alice, entry_file):
    job = submitted(alice, entry_file, conf={"spark.sql.shuffle.partitions": "8",
                                             "spark.speculation": "true"})

    argv = spark.submit_argv(job)

    assert ("spark.sql.shuffle.partitions", "8") in confs(argv)
    assert ("spark.speculation", "true") in confs(argv)
    # Options, before the entry file and its parameters.
    assert argv.index("--conf") < argv.index(entry_file) == len(argv) - 1


def test_the_markets_properties_win_over_the_jobs(alice, entry_file, monkeypatch):
    job = submitted(alice, entry_file)
    # As if the allowlist let everything through: the market's values still win, once each.
    Job.objects.filter(pk=job.pk).update(conf={
        "spark.ui.enabled": "true", "spark.driver.host": "203.0.113.9",
        "spark.eventLog.dir": "file:///tmp/elsewhere", "spark.cores.max": "999",
        "spark.sql.shuffle.partitions": "8"})
    job.refresh_from_db()
    monkeypatch.setattr(spark, "conf_allowed", lambda key: True)

    pairs = confs(spark.submit_argv(job))
    keys = [k for k, _ in pairs]

    assert len(keys) == len(set(keys))
    assert dict(pairs)["spark.ui.enabled"] == "false"
    assert dict(pairs)["spark.driver.host"] != "203.0.113.9"
    assert dict(pairs)["spark.eventLog.dir"] == job.events_dir.as_uri()
    assert dict(pairs)["spark.cores.max"] == "1"
    assert dict(pairs)["spark.sql.shuffle.partitions"] == "8"


def test_a_stored_property_off_the_allowlist_is_left_out(alice, entry_file):
    job = submitted(alice, entry_file)
    Job.objects.filter(pk=job.pk).update(conf={
        "spark.executorEnv.LD_PRELOAD": "/tmp/evil.so",
        "spark.driver.extraJavaOptions": "-javaagent:/tmp/evil.jar",
        "spark.authenticate": "false", "spark.sql.shuffle.partitions": "8"})
    job.refresh_from_db()

    pairs = dict(confs(spark.submit_argv(job)))

    assert "spark.executorEnv.LD_PRELOAD" not in pairs
    assert "spark.authenticate" not in pairs
    assert pairs["spark.driver.extraJavaOptions"] == f"-Duser.name={job.tag}"
    assert pairs["spark.sql.shuffle.partitions"] == "8"


def test_a_jars_main_class_is_passed_as_class(alice):
    job = submitted(alice, JAR, main_class="org.example.Main", app_params=["--class", "x"])

    argv = spark.submit_argv(job)

    assert argv[-5:] == ["--class", "org.example.Main", JAR, "--class", "x"]
    assert argv.count("--class") == 2


def test_no_class_without_a_main_class_or_for_a_py(alice, entry_file):
    jar = submitted(alice, JAR)
    py = submitted(alice, entry_file)
    Job.objects.filter(pk=py.pk).update(main_class="org.example.Main")
    py.refresh_from_db()

    assert "--class" not in spark.submit_argv(jar)
    assert "--class" not in spark.submit_argv(py)


def test_driver_memory_reaches_spark_submit(alice, entry_file, settings):
    settings.DMARKET_DRIVER_MEMORY_MB = 1536
    given = spark.submit_argv(submitted(alice, entry_file, driver_memory_mb=2048))
    default = spark.submit_argv(submitted(alice, entry_file))

    assert given[given.index("--driver-memory") + 1] == "2048m"
    assert default[default.index("--driver-memory") + 1] == "1536m"
