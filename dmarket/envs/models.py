from pathlib import Path

from django.conf import settings
from django.db import models


class Environment(models.Model):
    """A job environment built from a set of requirements: the packages `pip install --target`
    put in a directory, packed as a tar.gz that executors unpack and drivers read. Built once
    per (requirements, Python, platform); every job asking for the same set reuses it."""

    class Status(models.TextChoices):
        BUILDING = "BUILDING"
        READY = "READY"
        FAILED = "FAILED"

    BUILDING, READY, FAILED = Status

    # sha256 of the normalised requirements, the Python version and the platform.
    key = models.CharField(max_length=64, unique=True)
    requirements = models.TextField()
    python = models.CharField(max_length=16)
    platform = models.CharField(max_length=64)
    status = models.CharField(max_length=8, choices=Status, default=BUILDING, db_index=True)
    error = models.TextField(blank=True)
    # The launcher building it (a claim by conditional UPDATE), and since when.
    builder = models.CharField(max_length=200, blank=True)
    build_started_at = models.DateTimeField(null=True, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    # Its copy's key in an object store (DMARKET_STORAGE=s3), which executors fetch by signed
    # URL; empty: it is served from archive_path by the central server.
    blob = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    built_at = models.DateTimeField(null=True, blank=True)
    # Who asked for the build (a user may have DMARKET_ENV_MAX_BUILDING_PER_USER at once).
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True,
                                     blank=True, related_name="+")
    # How many submits and builds asked for it (the first built it; the rest reused it).
    uses = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"environment {self.key[:12]} ({self.status})"

    @property
    def archive_path(self):
        return Path(settings.DMARKET_ENVS_DIR) / f"{self.key}.tar.gz"

    @property
    def build_dir(self):
        return Path(settings.DMARKET_ENVS_DIR) / "builds" / self.key

    @property
    def work_dir(self):
        # Where the sandbox's wrapper writes the build's exit code.
        return self.build_dir

    @property
    def log_path(self):
        return self.build_dir / "build.log"
