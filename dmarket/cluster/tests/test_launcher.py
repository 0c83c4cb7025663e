"""The launcher daemon on a real Spark cluster: real spark-submit, real drivers, real bills."""

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection

from dmarket.cluster import spark
from dmarket.conftest import client_for
from dmarket.credits.models import LedgerEntry
from dmarket.jobs.models import Job

from .util import (drive, expected_bill, history_core_ms, ledger_sum, read_log, result,
                   settled, share_workers, submit)

pytestmark = pytest.mark.django_db(transaction=True)


def test_job_runs_to_success_with_results_log_and_exact_bill(cluster, make_user):
    machines = share_workers(cluster, make_user)
    alice = make_user("alice")
    job = submit(alice, app_params=["--seconds", "4"])

    job = drive(job, settled)

    assert job.status == Job.SUCCEEDED
    assert job.exit_code == 0
    assert job.spark_app_id.startswith("app-")
    assert "finished 4 tasks" in read_log(job)
    client = client_for(alice)
    listing = client.get(f"/api/jobs/{job.pk}/results/").json()
    assert [f["path"] for f in listing["results"]] == ["nested/note.txt", "result.json"]
    download = client.get(f"/api/jobs/{job.pk}/results/nested/note.txt")
    assert b"".join(download.streaming_content) == b"nested result\n"
    # Both workers ran executors; the bill is their history-server core-time at the price.
    core_ms = history_core_ms(job)
    assert len(core_ms) == 2
    assert job.cost == expected_bill(job, core_ms) > 0
    assert -ledger_sum(job=job, kind=LedgerEntry.CHARGE) == job.cost
    earned = {address: ledger_sum(machine=m, kind=LedgerEntry.EARNING)
              for address, m in machines.items()}
    assert all(amount > 0 for amount in earned.values())
    assert sum(earned.values()) == job.cost
    credits = client.get("/api/credits/").json()
    assert credits["held"] == "0.000000"
    assert Decimal(credits["balance"]) == Decimal(100) - job.cost


def test_driver_that_raises_fails_with_its_traceback_in_the_log(cluster, make_user):
    share_workers(cluster, make_user)
    job = submit(make_user("alice"), app_params=["--fail"])

    job = drive(job, settled)

    assert job.status == Job.FAILED
    assert job.exit_code == 1
    assert job.status_reason == "the driver exited with code 1"
    log = read_log(job)
    assert "Traceback" in log and "RuntimeError: deliberate failure in the driver" in log


def test_parameters_reach_the_application_verbatim(cluster, make_user):
    share_workers(cluster, make_user)
    params = ["--seconds", "0.5", "; rm -rf / && echo $(whoami)", "`id`", "a b", "'q'", '"',
              "*", "$HOME", "\\", "--tasks", "2"]
    job = submit(make_user("alice"), app_params=params)

    job = drive(job, settled)

    assert job.status == Job.SUCCEEDED, read_log(job)
    assert result(job)["argv"] == params
