from django.db import models


class DaemonPass(models.Model):
    """The last pass of each daemon loop (launcher, billing, monitor, inference), written by
    dmarket.common.daemon.run_loop after every pass: what /api/metrics/ reports as pass times
    and ages, so that an operator sees a daemon that is slow, failing or gone."""

    name = models.CharField(max_length=100, primary_key=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(default=0)
    finished_at = models.DateTimeField()
    seconds = models.FloatField(help_text="How long the last pass took.")
    passes = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0, help_text="Passes that raised.")

    def __str__(self):
        return f"{self.name} ({self.passes} passes)"
