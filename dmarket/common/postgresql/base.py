"""Django's PostgreSQL backend, with two savings on the hottest statements.

Timestamps read by psycopg's own (C) loader where that gives the very same values. Django reads
every timestamptz through a Python subclass of psycopg's loader that only replaces the result's
tzinfo with the connection's time zone: psycopg then cannot use its C loader, and a page of 50
jobs (200 timestamps) spent about 0.9 ms there. When Django's zone for the connection is UTC
(USE_TZ, no database TIME_ZONE) and the session's is "UTC" (Django sets it so), psycopg's loader
already gives tzinfo=datetime.timezone.utc, exactly what Django's would; anything else keeps
Django's loader.

prepared_cursor(): a statement run thousands of times a second (the steady heartbeat) bound on
the server and prepared on its connection, so that PostgreSQL parses and plans it once per
connection instead of once per run. Django keeps prepared statements off on the connection
(prepare_threshold None, for connection poolers); they stay off for every other cursor, which
psycopg then does not even count. DMARKET_DATABASE_PREPARE=false binds on the server without
preparing, for a pooler that cannot keep prepared statements."""

import datetime

from django.conf import settings
from django.db.backends.postgresql import base, operations
from psycopg import errors
from psycopg.types.datetime import TimestamptzLoader  # psycopg registers its C version


class PreparedCursor(base.ServerBindingCursor):
    """Prepares each statement it runs on first use: the connection's threshold is lifted for
    the call alone (psycopg reuses a prepared statement only while it is not None)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        if not settings.DMARKET_DATABASE_PREPARE:
            return super().execute(query, params, prepare=False, binary=binary)
        connection = self.connection
        threshold, connection.prepare_threshold = connection.prepare_threshold, 0
        try:
            return super().execute(query, params, prepare=True, binary=binary)
        finally:
            connection.prepare_threshold = threshold


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor, sql, params):
        """For the query log (DEBUG, tests): psycopg keeps no text of a prepared run."""
        if isinstance(cursor, PreparedCursor):
            try:
                return self.compose_sql(sql, params)
            except errors.DataError:
                return None
        return super().last_executed_query(cursor, sql, params)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    _prepared_next = False

    def prepared_cursor(self):
        """Django's cursor (its query log and execute wrappers), whose statements are bound on
        the server and prepared (PreparedCursor)."""
        self.ensure_connection()  # a reconnect's own statements stay on Django's cursors
        self._prepared_next = True
        try:
            return self.cursor()
        finally:
            self._prepared_next = False

    def create_cursor(self, name=None):
        if self._prepared_next and not name:
            client, self.connection.cursor_factory = (self.connection.cursor_factory,
                                                      PreparedCursor)
            try:
                cursor = super().create_cursor(name)
            finally:
                self.connection.cursor_factory = client
        else:
            cursor = super().create_cursor(name)
        if (self.timezone is datetime.timezone.utc
                and self.connection.info.parameter_status("TimeZone") == "UTC"):
            cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        return cursor
