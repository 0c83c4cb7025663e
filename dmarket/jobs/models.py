from pathlib import Path

from django.conf import settings
from django.db import models

from dmarket.common.fields import JSONField


class Job(models.Model):
    # The moves between them: dmarket.jobs.lifecycle.
    class Status(models.TextChoices):
        QUEUED = "QUEUED"
        STARTING = "STARTING"
        RUNNING = "RUNNING"
        SUCCEEDED = "SUCCEEDED"
        FAILED = "FAILED"
        CANCELLED = "CANCELLED"
        LOST = "LOST"

    QUEUED, STARTING, RUNNING, SUCCEEDED, FAILED, CANCELLED, LOST = Status
    UNFINISHED = (QUEUED, STARTING, RUNNING)
    FINISHED = (SUCCEEDED, FAILED, CANCELLED, LOST)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="jobs")
    name = models.CharField(max_length=200)
    entry_file = models.CharField(max_length=2000)
    libs = JSONField(default=list, blank=True)
    archives = JSONField(default=list, blank=True)
    # Plain files each executor gets in its working directory (spark-submit's --files).
    files = JSONField(default=list, blank=True)
    # Passed to the application as argv entries, one list item each; never seen by a shell.
    app_params = JSONField(default=list, blank=True)
    cores = models.PositiveIntegerField(default=1)
    executor_memory_mb = models.PositiveIntegerField(default=1024)
    # The driver's JVM heap (--driver-memory); its sandbox may hold this plus
    # DMARKET_DRIVER_MEMORY_OVERHEAD_MB. Null: DMARKET_DRIVER_MEMORY_MB.
    driver_memory_mb = models.PositiveIntegerField(null=True, blank=True)
    # Seconds the job may run before the launcher stops it. Null: DMARKET_JOB_MAX_RUNTIME.
    max_runtime = models.PositiveIntegerField(null=True, blank=True)
    machine_type = models.CharField(max_length=32, default="cpu")
    # The accelerators (of the resource its machine type names, e.g. "gpu") each executor
    # holds, and each task's part of them (a fraction: tasks share one), as Spark schedules.
    gpus_per_executor = models.PositiveIntegerField(default=0)
    gpus_per_task = models.FloatField(default=0)
    # Spark properties of the user's own, from the allowlist of dmarket.jobs.conf.
    conf = JSONField(default=dict, blank=True)
    # A JAR's entry point (spark-submit --class).
    main_class = models.CharField(max_length=300, blank=True)
    # Its Python environment: built from requirements (environment), or a packed one named
    # by a dmarket:// URI (env); the Python and platform it is for, which some online
    # machine must run.
    environment = models.ForeignKey("envs.Environment", models.PROTECT, null=True, blank=True,
                                    related_name="jobs")
    env = models.CharField(max_length=2000, blank=True)
    env_python = models.CharField(max_length=16, blank=True)
    env_platform = models.CharField(max_length=64, blank=True)
    # A packed directory (dmarket:// URI of a zip) that is the driver's and executors' working
    # directory and on their sys.path.
    working_dir = models.CharField(max_length=2000, blank=True)
    # What it is billed under: its cap, prices and cost (dmarket.credits).
    run = models.OneToOneField("credits.Run", models.PROTECT, related_name="job")
    submission_id = models.CharField(max_length=128, null=True, blank=True)
    # A digest of the submitted fields: a retry with the same submission_id must match it.
    submission_digest = models.CharField(max_length=64, blank=True)
    # The credential in the URLs Spark fetches the job's dmarket:// files from: random, kept
    # here rather than derived from SECRET_KEY, so that a launcher on another host (with a
    # key of its own) hands out URLs the web server honours. Empty: no such files.
    files_token = models.CharField(max_length=64, blank=True)

    status = models.CharField(max_length=10, choices=Status, default=QUEUED, db_index=True)
    status_reason = models.CharField(max_length=500, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # What the launcher records when it stops a job on request: CANCELLED for its owner or an
    # operator, FAILED when its cost reached its cap.
    stop_status = models.CharField(max_length=10, choices=Status, blank=True)
    # Filled by the launcher (the Spark issue): who runs the driver, and what became of it.
    launcher = models.CharField(max_length=200, blank=True)
    driver_pid = models.IntegerField(null=True, blank=True)
    spark_app_id = models.CharField(max_length=100, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When its result files were recorded (and copied into the store): from then on they are
    # read from there, not from the launcher host's output directory.
    results_stored_at = models.DateTimeField(null=True, blank=True)
    # When its executors were billed and what was left of its hold released.
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "submission_id"],
                                    name="job_unique_submission_id"),
        ]
        # A user's list, newest first (read backwards): a page is its rows alone, found in
        # order, however many jobs the user has, not all of them joined and sorted.
        # A user's list and the operators' (?all=true) are read newest first, a page at a time.
        indexes = [models.Index(fields=["user", "created_at", "id"], name="job_user_newest"),
                   models.Index(fields=["created_at", "id"], name="job_newest")]

    def __str__(self):
        return f"job {self.pk} {self.name!r} ({self.status})"

    @property
    def tag(self):
        """Names the job's Spark application, so it can be found again after a restart."""
        return f"dmarket-job-{self.pk}"

    @property
    def resource(self):
        """The Spark resource its executors ask for ("gpu"), or "" for a cpu job."""
        return "" if self.machine_type == "cpu" else self.machine_type

    @property
    def is_finished(self):
        return self.status in self.FINISHED

    @property
    def work_dir(self):
        return Path(settings.DMARKET_JOBS_DIR) / str(self.pk)

    @property
    def log_path(self):
        return self.work_dir / "driver.log"

    @property
    def output_dir(self):
        return self.work_dir / "output"

    # The sandbox writes only output_dir, events_dir (its Spark event log) and home_dir (its
    # HOME and working directory); the rest of work_dir (the exit code) is the launcher's.
    @property
    def events_dir(self):
        return self.work_dir / "events"

    @property
    def home_dir(self):
        return self.work_dir / "home"

    @property
    def driver_memory(self):
        return self.driver_memory_mb or settings.DMARKET_DRIVER_MEMORY_MB

    @property
    def runtime_limit(self):
        return self.max_runtime or settings.DMARKET_JOB_MAX_RUNTIME
