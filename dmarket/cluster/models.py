from django.db import models

from dmarket.common.fields import JSONField


class ClusterSecret(models.Model):
    """The Spark cluster's shared secret (spark.authenticate): one row, made on first use,
    replaced by `manage.py cluster_secret --rotate`. Not in the admin: nobody reads it there."""
    value = models.CharField(max_length=128)
    rotated_at = models.DateTimeField(auto_now=True)


class PolicedApp(models.Model):
    """An application the market killed on its master: no running job's verified one."""
    app_id = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=500, blank=True)
    # What the master shows as its user; anyone can choose it, so it proves nothing.
    spark_user = models.CharField(max_length=200, blank=True)
    # The driver's RPC address (host:port), from the executors' command lines on the workers.
    driver_address = models.CharField(max_length=300, blank=True)
    # The job whose sandbox ran its driver, where one did; that job was failed for it.
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="policed_apps")
    reason = models.CharField(max_length=500)
    cores = models.PositiveIntegerField(default=0)
    # [{"worker": id, "host": address, "executor": id, "cores": n, "gpus": n}] the workers
    # ran for it.
    executors = JSONField(default=list, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    killed_at = models.DateTimeField(auto_now_add=True)
    killed_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return self.app_id
