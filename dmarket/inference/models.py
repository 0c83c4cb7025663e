"""Inference jobs: a model run over every input of a dataset, in batches, by the inference
server (one long-running Spark application shared by all inference jobs).

Each inference job owns a credits.Run, as a Spark job does: what it holds, is charged and earns.
"""

from django.conf import settings
from django.db import models

from dmarket.common.fields import JSONField


class InferenceJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "QUEUED"
        RUNNING = "RUNNING"
        SUCCEEDED = "SUCCEEDED"
        FAILED = "FAILED"
        CANCELLED = "CANCELLED"

    QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = Status
    UNFINISHED = (QUEUED, RUNNING)
    FINISHED = (SUCCEEDED, FAILED, CANCELLED)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT,
                             related_name="inference_jobs")
    # What it is billed under: its cap, prices and cost (dmarket.credits).
    run = models.OneToOneField("credits.Run", models.PROTECT, related_name="inference")
    name = models.CharField(max_length=200)
    model = models.CharField(max_length=2000)
    weights = models.CharField(max_length=2000, blank=True)
    data = models.CharField(max_length=2000)
    # The data's files, pinned at submission: [[input name, dmarket:// URI], ...] in order;
    # empty for synthetic data and an operator's server path (listed when the job starts).
    data_files = JSONField(default=list, blank=True)
    # Read by the inference server before each batch it forms: a change applies to the next.
    batch_size = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status, default=QUEUED, db_index=True)
    status_reason = models.CharField(max_length=500, blank=True)
    # Asked of a running job (its owner's cancel, its credit cap), with the outcome the
    # inference server records when it stops it: CANCELLED or FAILED (lifecycle.py).
    cancel_requested = models.BooleanField(default=False)
    stop_status = models.CharField(max_length=10, choices=Status, blank=True)
    input_count = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When what it ran was billed and what was left of its hold released.
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"inference job {self.pk} ({self.status})"

    @property
    def is_finished(self):
        return self.status in self.FINISHED

    @property
    def pool(self):
        """The FAIR scheduler pool of its Spark jobs in the inference server."""
        return f"infer-{self.pk}"


class InferenceBatch(models.Model):
    """One batch that ran to completion: its inputs [first_index, first_index + size)."""

    job = models.ForeignKey(InferenceJob, models.CASCADE, related_name="batches")
    first_index = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    # The model's predict on the batch: each of its queries counts this as its query time.
    processing_ms = models.FloatField()
    # What the batch held its core for (reading inputs, loading the model the first time,
    # predict), times the task's cores: what is billed.
    core_ms = models.PositiveBigIntegerField()
    # GPU-time its task held (the inference server's executors hold GPUs when
    # DMARKET_INFERENCE_GPUS says so).
    gpu_ms = models.PositiveBigIntegerField(default=0)
    executor = models.CharField(max_length=100, blank=True)
    host = models.CharField(max_length=255, blank=True)
    machine = models.ForeignKey("machines.Machine", models.SET_NULL, null=True, blank=True,
                                related_name="+")
    # When it ran: from its arrival at the driver back by the time its task spent on it.
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(db_index=True)
    # Names the Usage it was billed under; empty until the server bills it.
    usage_key = models.CharField(max_length=200, blank=True, db_index=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # A batch rerun (its Spark job failed after part of it was recorded) counts once.
            models.UniqueConstraint(fields=["job", "first_index"], name="batch_unique_start"),
        ]


class InferenceOutput(models.Model):
    """The model's output for one input; exactly one per input, whatever was retried."""

    job = models.ForeignKey(InferenceJob, models.CASCADE, related_name="outputs")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=500)
    output = JSONField()

    class Meta:
        ordering = ["index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="output_unique_input"),
        ]
