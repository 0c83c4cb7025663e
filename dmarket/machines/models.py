from datetime import time

from django.conf import settings
from django.db import models
from django.utils import timezone


def parse_window(text):
    """'09:00-18:00' -> (time(9), time(18)); a window may wrap past midnight."""
    start_text, sep, end_text = text.partition("-")
    if not sep:
        raise ValueError("expected HH:MM-HH:MM, e.g. 09:00-18:00")
    try:
        start = time.fromisoformat(start_text.strip())
        end = time.fromisoformat(end_text.strip())
    except ValueError:
        raise ValueError("expected HH:MM-HH:MM with 24-hour times, e.g. 09:00-18:00") from None
    if start.tzinfo is not None or end.tzinfo is not None:
        # fromisoformat takes "09+05" too; such a time cannot be compared with the server's.
        raise ValueError("expected HH:MM-HH:MM with 24-hour times, e.g. 09:00-18:00")
    if start == end:
        raise ValueError("the window's start and end are the same time")
    return start, end


class Machine(models.Model):
    class State(models.TextChoices):
        ONLINE = "ONLINE"
        OFFLINE = "OFFLINE"
        PAUSED = "PAUSED"
        REMOVED = "REMOVED"

    ONLINE, OFFLINE, PAUSED, REMOVED = State

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="machines")
    name = models.CharField(max_length=100, blank=True)
    cores = models.PositiveIntegerField()
    memory_mb = models.PositiveIntegerField()
    machine_type = models.CharField(max_length=32, default="cpu")
    # Accelerators it offers, of the Spark resource its machine type names ("gpu"); its
    # worker starts with that many addresses. 0 for a cpu machine.
    gpus = models.PositiveIntegerField(default=0)
    address = models.CharField(max_length=255)
    # Daily window in the server's time zone (UTC), "HH:MM-HH:MM"; empty: always shared.
    sharing_window = models.CharField(max_length=11, blank=True)
    share_until = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=8, choices=State, default=OFFLINE, db_index=True)
    # What the agent reported last: e.g. the Spark worker's id and state.
    worker_id = models.CharField(max_length=200, blank=True)
    worker_state = models.CharField(max_length=32, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    # The silence (s) its agent was last told counts as offline (the heartbeat's answer): the
    # monitor holds each machine to what it was told. 0: never told (DMARKET_HEARTBEAT_TIMEOUT);
    # the column's own default too, for code that predates it (a rolling upgrade).
    heartbeat_timeout = models.PositiveIntegerField(default=0, db_default=0)
    # Cores of its worker that executors use now, as the Spark master last said.
    cores_in_use = models.PositiveIntegerField(default=0)
    # The Python its executors run ("3.11") and its platform ("linux-x86_64"), as its agent
    # reports them: which job environments it can run.
    python = models.CharField(max_length=16, blank=True)
    platform = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.name or self.address} #{self.pk} ({self.user})"

    def is_shared_at(self, now=None):
        now = now or timezone.now()
        if self.share_until is not None and now >= self.share_until:
            return False
        if not self.sharing_window:
            return True
        start, end = parse_window(self.sharing_window)
        t = now.astimezone(timezone.get_default_timezone()).time()
        if start < end:
            return start <= t < end
        return t >= start or t < end


class MachineStateChange(models.Model):
    """When a machine went online, offline, paused or removed: its availability history."""

    machine = models.ForeignKey(Machine, models.CASCADE, related_name="history")
    state = models.CharField(max_length=8, choices=Machine.State)
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
