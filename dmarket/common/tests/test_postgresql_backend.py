"""dmarket.common.postgresql: Django's PostgreSQL backend, its timestamps read by psycopg's
own loader when that gives the very values Django's would."""

import datetime

import psycopg
import pytest
from django.db import connection, connections
from django.db.backends.postgresql import base
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
        for _ in range(3):
            with connection.prepared_cursor() as cursor:
                cursor.execute(statement, [1])
                assert cursor.fetchone() == (42,)
    # Django's query log and execute wrappers still see them, with their text.
    assert [query["sql"] for query in queries.captured_queries] == [
        "SELECT 1::int + 41 AS answer_of_a_prepared_cursor"] * 3
    with connection.cursor() as cursor:
        assert ("SELECT $1::int + 41 AS answer_of_a_prepared_cursor"
                in prepared_statements(cursor))
        assert isinstance(cursor.cursor, psycopg.ClientCursor)  # every other one, as Django's
    # Django's default stays on the connection: psycopg prepares nothing else, counts nothing.
    assert connection.connection.prepare_threshold is None


@pytest.mark.django_db
def test_no_other_cursor_prepares_even_one_binding_on_the_server():
    """Only the prepared cursor lifts the connection's threshold, and only while it runs."""
    with connection.prepared_cursor() as cursor:
        cursor.execute("SELECT 1 AS lifted_once")
    connection.ensure_connection()
    with base.ServerBindingCursor(connection.connection) as cursor:
        for _ in range(7):  # past psycopg's own default threshold (5)
            cursor.execute("SELECT %s::int AS bound_on_the_server", [1])
    with connection.cursor() as cursor:
        statements = prepared_statements(cursor)
    assert "SELECT 1 AS lifted_once" in statements
    assert not any("bound_on_the_server" in s for s in statements)


@pytest.mark.django_db
def test_prepared_statements_can_be_turned_off_for_a_pooler(settings):
    """DMARKET_DATABASE_PREPARE=false: still bound on the server, never prepared (a pooler in
    transaction mode that cannot keep prepared statements)."""
    settings.DMARKET_DATABASE_PREPARE = False
    for _ in range(3):
        with connection.prepared_cursor() as cursor:
            cursor.execute("SELECT %s::int AS never_prepared", [1])
            assert type(cursor.cursor).__name__ == "PreparedCursor"
    with connection.cursor() as cursor:
        assert not any("never_prepared" in s for s in prepared_statements(cursor))
