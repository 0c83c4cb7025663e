"""dmarket.common.serializers.ValuesSerializer: a serializer's representations straight from
the database's rows, each statement compiled once per WHERE clause and ordering."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Value
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dmarket.common.serializers import ValuesSerializer
from dmarket.credits.models import Run
from dmarket.envs.models import Environment
from dmarket.jobs.models import Job
from dmarket.jobs.serializers import JobSerializer


def job(user, name, **fields):
    run = Run.objects.create(user=user, label=name, max_credits=Decimal("2.5"),
                             **fields.pop("run", {}))
    return Job.objects.create(user=user, run=run, name=name, entry_file="dmarket://a.py@1",
                              **fields)


@pytest.fixture
def jobs(alice, bob):
    now = timezone.now()
    env = Environment.objects.create(key="e" * 64, requirements="numpy==2.4.6\n",
                                     python="3.11", platform="linux_x86_64")
    return [
        job(alice, "plain"),
        # What a JSON column may hold beyond strings, which DRF turns into strings; a
        # timestamp without microseconds (ISO 8601 then leaves them out); a null one.
        job(alice, "odd", libs=[1, None, "x"], conf={"a": 1, "b": None}, app_params=[""],
            environment=env, status=Job.FAILED, status_reason="exit 3 ✗", exit_code=3,
            gpus_per_task=0.5, started_at=now.replace(microsecond=0),
            finished_at=now + timedelta(microseconds=1),
            run={"price_per_core_hour": Decimal("1.5"), "premium_rate": Decimal("1.2345")}),
        job(bob, "bobs", status=Job.RUNNING),
    ]


def representations(queryset):
    return [list(row.items()) for row in queryset]


def serialized(queryset):
    return [list(row.items()) for row in JobSerializer(queryset, many=True).data]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns"])
def test_rows_are_what_the_serializer_gives_in_any_time_zone(jobs, zone):
    rows = ValuesSerializer(JobSerializer)

    with timezone.override(zone):
        assert representations(rows.queryset.order_by("id")) == serialized(
            Job.objects.order_by("id"))


def test_one_statement_per_where_clause_each_call_with_its_own_parameters(alice, bob, jobs):
    rows = ValuesSerializer(JobSerializer)
    newest = ("-created_at", "-id")

    alices = representations(rows.queryset.filter(user=alice).order_by(*newest))
    bobs = representations(rows.queryset.filter(user=bob).order_by(*newest))

    assert alices == serialized(Job.objects.filter(user=alice).order_by(*newest))
    assert bobs == serialized(Job.objects.filter(user=bob).order_by(*newest))
    assert len(rows.statements) == 1
    # Another filter, another statement; a slice is added to the one statement.
    one = rows.queryset.filter(user=alice, status__in=["FAILED"]).order_by(*newest)
    two = rows.queryset.filter(user=alice, status__in=["FAILED", "QUEUED"]).order_by(*newest)
    assert [row["name"] for row in one] == ["odd"]
    assert [row["name"] for row in two] == ["odd", "plain"]
    assert [row["name"] for row in rows.queryset.filter(user=alice).order_by("id")[1:2]] == [
        "odd"]
    assert len(rows.statements) == 4


def test_the_reversed_order_is_a_statement_of_its_own(alice, jobs):
    rows = ValuesSerializer(JobSerializer)
    queryset = rows.queryset.filter(user=alice).order_by("id")

    assert [row["name"] for row in queryset] == ["plain", "odd"]
    assert [row["name"] for row in queryset.reverse()] == ["odd", "plain"]


def test_a_filter_nothing_can_match_reads_nothing(jobs):
    rows = ValuesSerializer(JobSerializer)

    with CaptureQueriesContext(connection) as queries:
        assert list(rows.queryset.filter(status__in=[])) == []
    assert len(queries) == 0


def test_a_query_that_does_more_than_filter_order_and_slice_is_compiled_whole(alice, jobs):
    rows = ValuesSerializer(JobSerializer)
    plain = rows.queryset.filter(user=alice).order_by("id")
    assert [row["name"] for row in plain] == ["plain", "odd"]
    assert len(rows.statements) == 1

    with CaptureQueriesContext(connection) as queries:
        distinct = [row["name"] for row in plain.distinct()]
    assert distinct == ["plain", "odd"]
    assert "DISTINCT" in queries[0]["sql"]  # not the plain statement, which has the same WHERE
    annotated = rows.queryset.annotate(one=Value(1)).filter(one=1, user=alice).order_by("id")
    assert [row["name"] for row in annotated] == ["plain", "odd"]
    with_extra = plain.extra(select={"extra": "1"})
    assert [row["name"] for row in with_extra] == ["plain", "odd"]
    assert len(rows.statements) == 1


def test_statements_kept_are_bounded(alice, bob, jobs):
    rows = ValuesSerializer(JobSerializer)
    rows.STATEMENTS = 1

    for status in ("FAILED", "QUEUED", "RUNNING"):
        list(rows.queryset.filter(status=status).order_by("id"))
    assert [row["name"] for row in rows.queryset.filter(status="RUNNING")] == ["bobs"]
    assert len(rows.statements) == 1
