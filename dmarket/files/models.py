from django.conf import settings
from django.db import models


class StoredFile(models.Model):
    """A name in one user's store; its bytes are in its versions."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="files")
    name = models.CharField(max_length=255)
    public = models.BooleanField(default=False)
    # Numbers are never reused, even after a version is deleted: NAME@3 names one content.
    next_version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user_id", "name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"],
                                               name="file_unique_name")]

    def __str__(self):
        return f"{self.user} {self.name}"


class FileVersion(models.Model):
    file = models.ForeignKey(StoredFile, models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    # The bytes' key in the store (dmarket.files.storage); written once, before this row.
    blob = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["file_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["file", "version"],
                                               name="file_version_unique")]

    def __str__(self):
        return f"{self.file}@{self.version}"

    def local_path(self):
        """A path on this host holding the bytes (a cached copy when they are in S3)."""
        from .storage import blobs

        return blobs().local_path(self.blob, self.sha256)


class JobInput(models.Model):
    """A dmarket:// file that a job (of either kind: through its run) names, pinned when it
    was submitted: what the job's credential may read, and what cannot be deleted while the
    job is unfinished."""

    run = models.ForeignKey("credits.Run", models.CASCADE, related_name="inputs")
    # The pinned URI as the job shows it (dmarket://NAME@VERSION), without any '#alias'.
    uri = models.CharField(max_length=2000)
    # One of these two: a stored version, or another job's result file.
    version = models.ForeignKey(FileVersion, models.SET_NULL, null=True, blank=True,
                                related_name="job_inputs")
    result_job = models.ForeignKey("jobs.Job", models.PROTECT, null=True, blank=True,
                                   related_name="+")
    result_path = models.CharField(max_length=2000, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "uri"],
                                               name="job_input_unique_uri")]

    def __str__(self):
        return f"run {self.run_id}: {self.uri}"


class ResultFile(models.Model):
    """A file a finished job left in its output, recorded once when it ended: its bytes are
    in the store under `blob` (or, with the local store, still in the job's output directory,
    `blob` empty)."""

    job = models.ForeignKey("jobs.Job", models.CASCADE, related_name="result_files")
    path = models.CharField(max_length=2000)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    blob = models.CharField(max_length=100, blank=True)
    modified_at = models.DateTimeField()

    class Meta:
        ordering = ["job_id", "path"]
        constraints = [models.UniqueConstraint(fields=["job", "path"],
                                               name="result_file_unique_path")]

    def __str__(self):
        return f"job {self.job_id}: {self.path}"
