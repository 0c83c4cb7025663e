"""dmarket.common.fields.JSONField: what Django's JSONField reads, read by orjson where orjson
reads it the same."""

import json

import pytest
from django.db import connection

from dmarket.jobs.models import Job
from dmarket.jobs.tests.factories import make_job

pytestmark = pytest.mark.django_db

DOCUMENTS = [
    {}, [], {"spark.executor.cores": "2", "nested": {"a": [1, 2.5, None, True, False]}},
    ["--epochs", "3", "é", "雨", "\u2028"],
    # Beyond orjson's 64-bit integers: it would read these as floats.
    {"big": 123456789012345678901234567890, "negative": -9223372036854775809},
    {"u64": 18446744073709551615, "i64": -9223372036854775808},
    {"float": 0.1, "exponent": 1e300, "tiny": 5e-324, "zero": -0.0},
    "a string", 7,
]


@pytest.mark.parametrize("document", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_a_column_reads_back_what_pythons_json_reads_from_it(alice, document):
    job = make_job(user=alice, name="j", entry_file="dmarket://a.py@1", conf=document)
    with connection.cursor() as cursor:
        cursor.execute("SELECT conf::text FROM jobs_job WHERE id = %s", [job.pk])
        text = cursor.fetchone()[0]
    expected = json.loads(text)

    for read in (Job.objects.get(pk=job.pk).conf,
                 Job.objects.filter(pk=job.pk).values_list("conf", flat=True).get()):
        assert read == expected
        assert json.dumps(read) == json.dumps(expected)  # ints stay ints, floats floats


def test_a_key_of_the_column_reads_as_djangos_does(alice):
    job = make_job(user=alice, name="j", entry_file="dmarket://a.py@1",
                   conf={"k": "v", "n": 12345678901234567890123, "o": {"x": 1}})
    row = Job.objects.filter(pk=job.pk).values("conf__k", "conf__n", "conf__o").get()
    assert row == {"conf__k": "v", "conf__n": 12345678901234567890123, "conf__o": {"x": 1}}


def test_migrations_see_djangos_own_field():
    name, path, _, _ = Job._meta.get_field("conf").deconstruct()
    assert (name, path) == ("conf", "django.db.models.JSONField")
