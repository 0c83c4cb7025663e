"""dmarket credits, dmarket credits history, dmarket prices."""

import json
import re
from datetime import timezone as dt_timezone

from dmarket.credits.models import LedgerEntry
from dmarket.credits.services import Usage, run_bill_usage
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine


def stamp(moment):
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_credits_of_a_new_account(dmarket, user):
    result = dmarket("credits")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ("balance    100.000000\n"
                             "held       0.000000\n"
                             "available  100.000000\n"
                             "earned     0.000000\n"
                             "spent      0.000000\n")


def test_credits_json(dmarket, dmarket_json, user, entry_file):
    dmarket_json("jobs", "submit", entry_file, "--max-credits", "12.5")
    result = dmarket("credits", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"balance": "100.000000", "held": "12.500000",
                                         "available": "87.500000", "earned": "0.000000",
                                         "spent": "0.000000"}
    assert dmarket_json("credits") == json.loads(result.stdout)


def test_credits_after_a_bill(dmarket_json, user, entry_file):
    job_id = dmarket_json("jobs", "submit", entry_file)["id"]
    machine = Machine.objects.create(user=user.model, cores=4, memory_mb=4096,
                                     address="10.0.0.5")
    job = Job.objects.get(pk=job_id)
    # 1 core for 30 minutes at 1 credit per core-hour times the premium of 2: 1 credit.
    run_bill_usage(job.run, [Usage(key="0", machine=machine, core_ms=1_800_000)])
    assert dmarket_json("credits") == {"balance": "100.000000", "held": "9.000000",
                                       "available": "91.000000", "earned": "1.000000",
                                       "spent": "1.000000"}


def test_history(dmarket, dmarket_json, user, entry_file):
    job_id = dmarket_json("jobs", "submit", entry_file)["id"]
    dmarket_json("jobs", "cancel", job_id)
    grant, hold, release = LedgerEntry.objects.filter(user=user.model).order_by("id")

    result = dmarket("credits", "history")
    assert result.exit_code == 0, result.stderr
    cells = [re.split(r"\s{2,}", line) for line in result.stdout.splitlines()]
    assert cells == [
        ["ID", "KIND", "AMOUNT", "HELD", "BALANCE", "JOB", "INFERENCE", "MEMO", "CREATED"],
        # (their INFERENCE column is blank)
        [str(release.pk), "release", "0.000000", "-10.000000", "100.000000", str(job_id),
         f"release of job {job_id}'s hold", stamp(release.created_at)],
        [str(hold.pk), "hold", "0.000000", "10.000000", "100.000000", str(job_id),
         f"hold for job {job_id}", stamp(hold.created_at)],
        # (its JOB column is blank)
        [str(grant.pk), "grant", "100.000000", "0.000000", "100.000000", "sign-up grant",
         stamp(grant.created_at)],
    ]
    # Aligned: each column starts where its header does.
    lines = result.stdout.splitlines()
    kind, created = lines[0].index("KIND"), lines[0].index("CREATED")
    assert [line[kind:].split()[0] for line in lines[1:]] == ["release", "hold", "grant"]
    assert [line[created:] for line in lines[1:]] == [
        stamp(e.created_at) for e in (release, hold, grant)]

    rows = dmarket_json("credits", "history")
    assert [(r["kind"], r["amount"], r["held"], r["job"]) for r in rows] == [
        ("release", "0.000000", "-10.000000", job_id),
        ("hold", "0.000000", "10.000000", job_id),
        ("grant", "100.000000", "0.000000", None),
    ]
    assert rows[2] == {"id": grant.pk, "kind": "grant", "amount": "100.000000",
                       "held": "0.000000", "balance_after": "100.000000",
                       "held_after": "0.000000", "run": None, "job": None,
                       "inference_job": None, "machine": None, "memo": "sign-up grant",
                       "created_at": rows[2]["created_at"]}

    result = dmarket("credits", "history", "--kind", "HOLD", "--json")
    assert [r["id"] for r in json.loads(result.stdout)] == [hold.pk]
    assert [r["id"] for r in dmarket_json("credits", "history", "--kind", "grant", "--kind",
                                          "release")] == [release.pk, grant.pk]
    assert [r["id"] for r in dmarket_json("credits", "history", "--limit", "2")] == [
        release.pk, hold.pk]


def test_history_follows_pages(dmarket_json, user, entry_file):
    for _ in range(30):
        job_id = dmarket_json("jobs", "submit", entry_file, "--max-credits", "0.1")["id"]
        dmarket_json("jobs", "cancel", job_id)
    assert len(dmarket_json("credits", "history", "--limit", "1000")) == 61
    assert len(dmarket_json("credits", "history")) == 50


def test_history_kind_is_checked(dmarket, user):
    result = dmarket("credits", "history", "--kind", "gift")
    assert result.exit_code == 2
    assert "Invalid value for '--kind'" in result.stderr


def test_prices(dmarket, user):
    result = dmarket("prices")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ("RESOURCE  PRICE     PRICE NOW\n"
                             "core      1.000000  2.000000\n"
                             "gpu       4.000000  8.000000\n"
                             "\n"
                             "machine_types    cpu, gpu\n"
                             "unit             credits per hour of one core or one GPU\n"
                             "premium_rate     1.0000\n"
                             "unfinished_jobs  0\n"
                             "online_machines  0\n"
                             "default_job_cap  10.000000\n"
                             "signup_grant     100.000000\n")


def test_prices_json(dmarket, dmarket_json, user, entry_file):
    Machine.objects.create(user=user.model, cores=4, memory_mb=4096, address="10.0.0.5",
                           state=Machine.ONLINE)
    for _ in range(3):
        dmarket_json("jobs", "submit", entry_file)
    result = dmarket("prices", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "unit": "credits per hour of one core or one GPU",
        "resources": {"core": "1.000000", "gpu": "4.000000"},
        "machine_types": ["cpu", "gpu"],
        "premium_rate": "2.0000",
        "unfinished_jobs": 3,
        "online_machines": 1,
        "effective": {"core": "2.000000", "gpu": "8.000000"},
        "default_job_cap": "10.000000",
        "signup_grant": "100.000000",
    }


def test_not_logged_in(dmarket, server):
    for command in (["credits"], ["credits", "history"], ["prices"]):
        result = dmarket(*command)
        assert result.exit_code == 1, command
        assert result.stderr.startswith(f"dmarket: not logged in to {server}"), command


def test_help(dmarket):
    for command in (["credits"], ["credits", "history"], ["prices"]):
        result = dmarket(*command, "--help")
        assert result.exit_code == 0 and result.stdout.startswith(
            f"Usage: dmarket {' '.join(command)} "), command
