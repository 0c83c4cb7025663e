"""dmarket.common.postgresql: Django's PostgreSQL backend, its timestamps read by psycopg's
own loader when that gives the very values Django's would."""

import datetime

import psycopg
import pytest
from django.db import connection, connections
from django.db.backends.postgresql.psycopg_any import BaseTzLoader, register_tzloader
from psycopg import adapters
from psycopg.pq import Format

TIMESTAMPTZ = adapters.types["timestamptz"].oid

TIMESTAMPS = ["2026-12-06 19:32:49.551844+00", "2026-12-06 19:32:49+00",
              "2026-12-06 21:02:49.000001+01:30", "1970-01-01 00:00:00+00",
              "0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00",
              "2024-02-29 12:00:00-11", "2026-03-29 01:59:59.5+00"]
SELECT = "SELECT " + ", ".join("%s::timestamptz" for _ in TIMESTAMPS)


def loader_of(cursor):
    return cursor.cursor.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)


def test_the_backend_is_in_use():
    assert type(connections["default"]).__module__ == "dmarket.common.postgresql.base"


@pytest.mark.django_db
def test_timestamps_are_read_as_djangos_loader_reads_them():
    with connection.cursor() as cursor:
        assert not issubclass(loader_of(cursor), BaseTzLoader)
        cursor.execute(SELECT, TIMESTAMPS)
        ours = cursor.fetchone()
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)  # Django's own, as it would
        assert issubclass(loader_of(cursor), BaseTzLoader)
        cursor.execute(SELECT, TIMESTAMPS)
        djangos = cursor.fetchone()

    assert ours == djangos
    assert [value.isoformat() for value in ours] == [value.isoformat() for value in djangos]
    assert all(value.tzinfo is datetime.timezone.utc for value in ours + djangos)


@pytest.mark.django_db
def test_a_session_in_another_time_zone_keeps_djangos_loader():
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Europe/Paris'")  # undone with the test's transaction
    try:
        with connection.cursor() as cursor:
            assert issubclass(loader_of(cursor), BaseTzLoader)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")


def prepared_statements(cursor):
    cursor.execute("SELECT statement FROM pg_prepared_statements")
    return [statement for (statement,) in cursor.fetchall()]


@pytest.mark.django_db
def test_a_prepared_cursor_prepares_its_statement_on_the_connection():
    from django.test.utils import CaptureQueriesContext

    statement = "SELECT %s::int + 41 AS answer_of_a_prepared_cursor"
    with CaptureQueriesContext(connection) as queries:
        for _ in range(7):  # past psycopg's prepare_threshold (5)
            with connection.prepared_cursor() as cursor:
                cursor.execute(statement, [1])
                assert cursor.fetchone() == (42,)
    assert len(queries) == 7  # Django's query log and execute wrappers still see them
    with connection.cursor() as cursor:
        assert ("SELECT $1::int + 41 AS answer_of_a_prepared_cursor"
                in prepared_statements(cursor))
        assert isinstance(cursor.cursor, psycopg.ClientCursor)  # every other one, as Django's


@pytest.mark.django_db
def test_a_client_cursor_never_prepares():
    with connection.cursor() as cursor:
        for _ in range(7):
            cursor.execute("SELECT %s::int + 41 AS answer_of_a_client_cursor", [1])
        assert not any("answer_of_a_client_cursor" in s for s in prepared_statements(cursor))


def test_prepared_statements_can_be_turned_off_for_a_pooler(settings):
    """DMARKET_DATABASE_PREPARE=false: Django's default (none prepared), for a pooler in
    transaction mode that cannot keep them; an operator's own prepare_threshold wins."""
    wrapper = connections["default"]
    assert wrapper.get_connection_params()["prepare_threshold"] == 5
    settings.DMARKET_DATABASE_PREPARE = False
    assert wrapper.get_connection_params()["prepare_threshold"] is None
    settings.DMARKET_DATABASE_PREPARE = True
    wrapper.settings_dict["OPTIONS"]["prepare_threshold"] = 20
    try:
        assert wrapper.get_connection_params()["prepare_threshold"] == 20
    finally:
        del wrapper.settings_dict["OPTIONS"]["prepare_threshold"]
