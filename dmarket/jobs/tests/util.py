"""Helpers shared by the jobs API tests."""

from django.utils.dateparse import parse_datetime

from dmarket.conftest import client_for
from dmarket.credits.models import LedgerEntry
from dmarket.jobs.models import Job

ANONYMOUS = {"detail": "Authentication credentials were not provided."}
NO_JOB = {"detail": "No Job matches the given query."}


def submit(user, entry_file, /, **fields):
    body = {"name": "job", "entry_file": entry_file, **fields}
    return client_for(user).post("/api/jobs/", body, format="json")


def submitted(user, entry_file, /, **fields):
    """Submit a job that must be accepted; return its Job row."""
    response = submit(user, entry_file, **fields)
    assert response.status_code == 201, response.content
    return Job.objects.get(pk=response.json()["id"])


def job_json(job_id, owner, entry_file, created_at, **changes):
    """The exact JSON of a job as the API shows it: a fresh default job, with `changes`."""
    body = {
        "id": job_id,
        "owner": owner,
        "name": "job",
        "entry_file": entry_file,
        "libs": [],
        "archives": [],
        "files": [],
        "app_params": [],
        "conf": {},
        "main_class": "",
        "requirements": "",
        "environment": None,
        "env": "",
        "working_dir": "",
        "cores": 1,
        "executor_memory_mb": 1024,
        "driver_memory_mb": 1024,
        "max_runtime": 21600,
        "machine_type": "cpu",
        "gpus_per_executor": 0,
        "gpus_per_task": 0.0,
        "max_credits": "10.000000",
        "submission_id": None,
        "status": "QUEUED",
        "status_reason": "",
        "cancel_requested": False,
        "price_per_core_hour": "1.000000",
        "price_per_gpu_hour": "4.000000",
        # No machine is online in these tests, so the premium sits at its cap (2).
        "premium_rate": "2.0000",
        "cost": "0.000000",
        "spark_app_id": "",
        "exit_code": None,
        "created_at": created_at,
        "started_at": None,
        "finished_at": None,
        "settled_at": None,
    }
    unknown = set(changes) - set(body)
    assert not unknown, f"not job fields: {unknown}"
    body.update(changes)
    return body


def job_json_of(job, entry_file=None, **changes):
    """job_json for a Job row, its timestamps rendered the way the API renders them."""
    job.refresh_from_db()
    for name in ("created_at", "started_at", "finished_at"):
        value = getattr(job, name)
        if name not in changes:
            changes[name] = iso(value) if value is not None else None
    changes.setdefault("name", job.name)
    changes.setdefault("status", job.status)
    changes.setdefault("status_reason", job.status_reason)
    changes.setdefault("cancel_requested", job.cancel_requested)
    return job_json(job.pk, job.user.username, entry_file or job.entry_file,
                    changes.pop("created_at"), **changes)


def iso(dt):
    text = dt.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def assert_created_at(body):
    """The response's created_at is the job row's, in UTC ("Z")."""
    job = Job.objects.get(pk=body["id"])
    assert body["created_at"].endswith("Z")
    assert parse_datetime(body["created_at"]) == job.created_at


def credits_of(user):
    return client_for(user).get("/api/credits/").json()


def ledger_kinds(user):
    return list(LedgerEntry.objects.filter(user=user).order_by("id")
                .values_list("kind", flat=True))
