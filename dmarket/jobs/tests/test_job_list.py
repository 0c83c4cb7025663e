"""GET /api/jobs/: a user's own jobs, newest first, paginated; operators may list everyone's."""

import pytest

from dmarket.conftest import client_for
from dmarket.credits.models import Run
from dmarket.jobs.models import Job

from .util import ANONYMOUS, job_json_of, submitted

EMPTY_PAGE = {"count": 0, "next": None, "previous": None, "results": []}
URL = "http://testserver/api/jobs/"


def jobs_of(user, entry_file, n):
    """n jobs, oldest first; a small cap each, so that many fit in the 100-credit grant."""
    return [submitted(user, entry_file, name=f"{user.username}-{i}", max_credits="1")
            for i in range(n)]


def page(results, count=None, next=None, previous=None):
    return {"count": len(results) if count is None else count, "next": next,
            "previous": previous, "results": results}


def test_no_jobs_is_an_empty_page(alice):
    response = client_for(alice).get("/api/jobs/")

    assert response.status_code == 200
    assert response.json() == EMPTY_PAGE


def test_own_jobs_only_newest_first(alice, bob, entry_file):
    mine = jobs_of(alice, entry_file, 3)
    jobs_of(bob, entry_file, 2)

    response = client_for(alice).get("/api/jobs/")

    assert response.status_code == 200
    assert response.json() == page([job_json_of(job, max_credits="1.000000")
                                    for job in reversed(mine)])


def test_pages_follow_page_size(alice, entry_file):
    jobs = list(reversed(jobs_of(alice, entry_file, 5)))
    client = client_for(alice)

    first = client.get("/api/jobs/?page_size=2")
    second = client.get(first.json()["next"])
    third = client.get(second.json()["next"])

    assert first.json() == page([job_json_of(j, max_credits="1.000000") for j in jobs[:2]],
                                count=5, next=f"{URL}?page=2&page_size=2")
    assert second.json() == page([job_json_of(j, max_credits="1.000000") for j in jobs[2:4]],
                                 count=5, next=f"{URL}?page=3&page_size=2",
                                 previous=f"{URL}?page_size=2")
    assert third.json() == page([job_json_of(j, max_credits="1.000000") for j in jobs[4:]],
                                count=5, previous=f"{URL}?page=2&page_size=2")


@pytest.mark.parametrize("page_number", ["", "&page=1"])
def test_a_first_page_that_holds_every_job_is_counted_without_a_count(
        alice, entry_file, django_assert_num_queries, page_number):
    jobs = list(reversed(jobs_of(alice, entry_file, 4)))
    client = client_for(alice)
    client.get("/api/jobs/")  # stamps the token's last use, which waits a while after

    with django_assert_num_queries(3):  # the token, the page and one more row, the count
        more = client.get(f"/api/jobs/?page_size=3{page_number}")
    with django_assert_num_queries(2):  # the token, the page and no more row
        all_of_them = client.get(f"/api/jobs/?page_size=4{page_number}")

    assert more.json() == page([job_json_of(j, max_credits="1.000000") for j in jobs[:3]],
                               count=4, next=f"{URL}?page=2&page_size=3")
    assert all_of_them.json() == page([job_json_of(j, max_credits="1.000000") for j in jobs])


def test_page_past_the_end_is_404(alice, entry_file):
    jobs_of(alice, entry_file, 1)

    response = client_for(alice).get("/api/jobs/?page=2")

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}


def set_statuses(jobs, *statuses):
    for job, status in zip(jobs, statuses):
        Job.objects.filter(pk=job.pk).update(status=status)
        job.refresh_from_db()


@pytest.mark.parametrize("query, wanted", [
    ("RUNNING", ["RUNNING"]),
    ("running", ["RUNNING"]),
    ("QUEUED,FAILED", ["QUEUED", "FAILED"]),
    (" queued , failed ", ["QUEUED", "FAILED"]),
    ("LOST", []),
])
def test_status_filter(alice, entry_file, query, wanted):
    jobs = jobs_of(alice, entry_file, 4)
    set_statuses(jobs, "QUEUED", "RUNNING", "FAILED", "SUCCEEDED")

    response = client_for(alice).get("/api/jobs/", {"status": query})

    expected = [job_json_of(j, max_credits="1.000000") for j in reversed(jobs)
                if j.status in wanted]
    assert response.status_code == 200
    assert response.json() == page(expected)


@pytest.mark.parametrize("query, shown", [
    ("BOGUS", "'BOGUS'"), ("RUNNING,nope", "'NOPE'"), ("x,y", "'X, Y'"), (",", "','"),
])
def test_unknown_status_is_400(alice, query, shown):
    response = client_for(alice).get("/api/jobs/", {"status": query})

    message = (f"Unknown value {shown}; one of QUEUED, STARTING, RUNNING, SUCCEEDED, FAILED, "
               "CANCELLED, LOST.")
    assert response.status_code == 400
    assert response.json() == {"detail": f"status: {message}", "errors": {"status": [message]}}


def test_staff_lists_everyones_jobs_with_all_true(alice, bob, staff, entry_file):
    a = jobs_of(alice, entry_file, 2)
    b = jobs_of(bob, entry_file, 1)
    newest_first = sorted(a + b, key=lambda j: j.pk, reverse=True)

    response = client_for(staff).get("/api/jobs/?all=true")

    assert response.status_code == 200
    assert response.json() == page([job_json_of(j, max_credits="1.000000")
                                    for j in newest_first])
    assert [r["owner"] for r in response.json()["results"]] == ["bob", "alice", "alice"]


def test_staff_without_all_sees_only_their_own(alice, staff, entry_file):
    jobs_of(alice, entry_file, 2)

    response = client_for(staff).get("/api/jobs/")

    assert response.status_code == 200
    assert response.json() == EMPTY_PAGE


def test_staff_all_combines_with_status(alice, bob, staff, entry_file):
    a = jobs_of(alice, entry_file, 2)
    b = jobs_of(bob, entry_file, 2)
    set_statuses(a, "RUNNING", "QUEUED")
    set_statuses(b, "QUEUED", "RUNNING")

    response = client_for(staff).get("/api/jobs/?all=1&status=RUNNING")

    assert response.json() == page([job_json_of(b[1], max_credits="1.000000"),
                                    job_json_of(a[0], max_credits="1.000000")])


def test_non_staff_all_true_is_403(alice, entry_file):
    jobs_of(alice, entry_file, 1)

    response = client_for(alice).get("/api/jobs/?all=true")

    assert response.status_code == 403
    assert response.json() == {"detail": "Only operators may list everyone's objects."}


def test_all_false_is_the_plain_list(alice, bob, entry_file):
    mine = jobs_of(alice, entry_file, 1)
    jobs_of(bob, entry_file, 1)

    response = client_for(alice).get("/api/jobs/?all=false")

    assert response.json() == page([job_json_of(mine[0], max_credits="1.000000")])


def test_all_with_a_bad_value_is_400(alice):
    response = client_for(alice).get("/api/jobs/?all=maybe")

    assert response.status_code == 400
    assert response.json() == {"detail": "all: Use all=true or all=false.",
                               "errors": {"all": ["Use all=true or all=false."]}}


def test_anonymous_is_401(db):
    response = client_for().get("/api/jobs/")

    assert response.status_code == 401
    assert response.json() == ANONYMOUS


def test_bad_token_is_401(alice):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = client.get("/api/jobs/")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_each_row_is_what_the_job_serializer_gives(alice, staff, entry_file,
                                                   django_assert_num_queries):
    """The list renders rows from values() (dmarket.common.serializers.ValuesSerializer), not
    through JobSerializer: every field, of every kind of job, must come out the same."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone
    from rest_framework.renderers import JSONRenderer

    from dmarket.envs.models import Environment
    from dmarket.jobs.serializers import JobSerializer

    env = Environment.objects.create(key="e" * 64, requirements="numpy==2.4.6\n",
                                     python="3.11", platform="linux_x86_64")
    now = timezone.now()
    plain = submitted(alice, entry_file, name="plain", max_credits="1")
    full = submitted(alice, entry_file, name="full <b>", max_credits="2.5")
    Job.objects.filter(pk=full.pk).update(
        libs=["dmarket://lib.zip@2"], archives=["dmarket://env.tgz#env"], files=["a.txt"],
        app_params=["--epochs", "3", ""], conf={"spark.task.cpus": "1"}, environment=env,
        env="env/bin/python", working_dir="work", driver_memory_mb=2048, max_runtime=600,
        machine_type="gpu", gpus_per_executor=2, gpus_per_task=0.5, status=Job.FAILED,
        status_reason="exit 3 ✗", cancel_requested=True, spark_app_id="app-20261206-0001",
        exit_code=3,
        started_at=now - timedelta(microseconds=1), finished_at=now,
        settled_at=now + timedelta(seconds=1), submission_id="s-1")
    # Its run's money, in the list through a join. (Its cost stays what its ledger says.)
    Run.objects.filter(pk=full.run_id).update(
        price_per_core_hour=Decimal("1.5"), price_per_gpu_hour=Decimal("4"),
        premium_rate=Decimal("1.2345"))

    with django_assert_num_queries(2):  # the token, the page (all of it: no count)
        response = client_for(alice).get("/api/jobs/")
    assert response.status_code == 200
    expected = JobSerializer(Job.objects.filter(pk__in=[full.pk, plain.pk])
                             .order_by("-created_at", "-id"), many=True).data
    assert response.content == JSONRenderer().render(
        {"count": 2, "next": None, "previous": None, "results": expected})
    assert response.json()["results"][0]["environment"] == "e" * 64
    assert response.json()["results"][1]["environment"] is None
    # Operators' list of everyone's jobs takes the same path.
    assert client_for(staff).get("/api/jobs/?all=true").json()["results"] == (
        response.json()["results"])


def test_the_operators_page_is_read_from_an_index_not_sorted(alice, bob, staff):
    """Every user's jobs, newest first: with thousands of them, the first page reads 51 rows
    of the index job_newest instead of sorting the whole table."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    runs = Run.objects.bulk_create([Run(user=user, label=f"job-{i}", max_credits=1)
                                    for i in range(1500) for user in (alice, bob)])
    Job.objects.bulk_create([Job(user=run.user, run=run, name=run.label,
                                 entry_file="dmarket://a.py@1") for run in runs])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")

    with CaptureQueriesContext(connection) as queries:
        response = client_for(staff).get("/api/jobs/?all=true")
    assert response.status_code == 200 and len(response.json()["results"]) == 50

    page_sql = next(q["sql"] for q in queries.captured_queries
                    if 'FROM "jobs_job"' in q["sql"] and "ORDER BY" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + page_sql)
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "job_newest" in plan and "Sort" not in plan, plan
