"""The shape of every daemon: a function for one iteration, run once or in a loop."""

import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection

from .middleware import log_subject

log = logging.getLogger("dmarket.daemon")


def pass_record(name, seconds, failed):
    """Write the pass into DaemonPass (one UPDATE; an INSERT the first time)."""
    import os
    import socket

    from django.db.models import F
    from django.utils import timezone

    from .models import DaemonPass

    fields = {"host": socket.gethostname()[:255], "pid": os.getpid(),
              "finished_at": timezone.now(), "seconds": seconds}
    if not DaemonPass.objects.filter(name=name).update(
            passes=F("passes") + 1, failed=F("failed") + int(failed), **fields):
        DaemonPass.objects.get_or_create(name=name, defaults={
            **fields, "passes": 1, "failed": int(failed)})


def run_loop(tick, interval, name):
    """Call tick() every `interval` seconds until SIGTERM or SIGINT; the iteration under way
    finishes first. An iteration that raises is logged and the loop goes on. Each pass's
    time is recorded (pass_record) for the metrics."""
    stop = threading.Event()

    def request_stop(signum, frame):
        log.info("%s: signal %s, stopping after this iteration", name, signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("%s: started", name)
    while not stop.is_set():
        started = time.monotonic()
        failed = False
        try:
            tick()
        except Exception:
            failed = True
            log.exception("%s: iteration failed", name)
            # A broken connection (the database restarted) is reopened next time.
            connection.close()
        try:
            pass_record(name, time.monotonic() - started, failed)
        except Exception:
            log.exception("%s: could not record the pass", name)
            connection.close()
        close_old_connections()
        stop.wait(interval)
    log.info("%s: stopped", name)


class DaemonCommand(BaseCommand):
    """A management command for a daemon: one iteration, or --loop until SIGTERM.

    Subclasses give `tick` (the iteration, returning a count), `interval_setting` (the name of
    the setting with the seconds between iterations) and `report` (what one iteration did)."""

    interval_setting = None
    report = "{} done"

    def tick(self, options):
        raise NotImplementedError

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="run until SIGTERM")

    def handle(self, *args, **options):
        if options["loop"]:
            name = self.__module__.rsplit(".", 1)[-1]
            run_loop(lambda: self.tick(options), getattr(settings, self.interval_setting), name)
        else:
            self.stdout.write(self.report.format(self.tick(options)))


def row_name(row):
    """"job 12" for a model row; the row's own text for anything else."""
    meta = getattr(row, "_meta", None)
    return f"{meta.model_name} {row.pk}" if meta is not None else str(row)


class RowGuard:
    """Each row of a daemon's pass handled on its own, as healthchecks' senders do: a row
    whose handling raises is logged and backed off (1, 2, 4… s, at most
    DMARKET_ROW_BACKOFF_MAX), the other rows go on; after DMARKET_ROW_POISON_AFTER failures
    in a row it is marked through `mark(row, error)` (once), and keeps being retried at the
    longest backoff. One guard per loop and process: the counts live in memory."""

    def __init__(self, name, mark=None):
        self.name = name
        self.mark = mark
        self.failures = {}  # row pk -> (failures in a row, monotonic time of the next try)

    def run(self, rows, handle):
        """handle(row) for each row not backed off; returns their results."""
        results = []
        for row in rows:
            count, retry_at = self.failures.get(row.pk, (0, 0.0))
            if time.monotonic() < retry_at:
                continue
            try:
                with log_subject(row_name(row)):
                    results.append(handle(row))
            except Exception as e:  # noqa: BLE001 - one bad row must not stall the others
                count += 1
                delay = min(2.0 ** (count - 1), settings.DMARKET_ROW_BACKOFF_MAX)
                self.failures[row.pk] = (count, time.monotonic() + delay)
                log.exception("%s: %s failed (%d time(s) in a row; next try in %.0f s)",
                              self.name, row, count, delay)
                if count == settings.DMARKET_ROW_POISON_AFTER and self.mark is not None:
                    try:
                        self.mark(row, e)
                    except Exception:  # noqa: BLE001
                        log.exception("%s: could not mark %s", self.name, row)
                continue
            self.failures.pop(row.pk, None)
        return results

    def backed_off(self):
        """The rows' pks that wait for their next try."""
        now = time.monotonic()
        return {pk for pk, (_, retry_at) in self.failures.items() if retry_at > now}
