"""Django's PostgreSQL backend, with two savings on the hottest statements.

Timestamps read by psycopg's own (C) loader where that gives the very same values. Django reads
every timestamptz through a Python subclass of psycopg's loader that only replaces the result's
tzinfo with the connection's time zone: psycopg then cannot use its C loader, and a page of 50
jobs (200 timestamps) spent about 0.9 ms there. When Django's zone for the connection is UTC
(USE_TZ, no database TIME_ZONE) and the session's is "UTC" (Django sets it so), psycopg's loader
already gives tzinfo=datetime.timezone.utc, exactly what Django's would; anything else keeps
Django's loader.

prepared_cursor(): a statement run thousands of times a second (the steady heartbeat) bound on
the server and prepared on each connection, so that PostgreSQL parses and plans it once per
connection instead of once per run. Django keeps prepared statements off (prepare_threshold
None) for connection poolers; every cursor but this one binds on the client, which psycopg never
prepares, so turning them on here changes nothing else. DMARKET_DATABASE_PREPARE=false keeps
them off for a pooler that cannot hold them."""

import datetime

from django.conf import settings
from django.db.backends.postgresql import base
from psycopg.types.datetime import TimestamptzLoader  # psycopg registers its C version


class DatabaseWrapper(base.DatabaseWrapper):
    _server_binding = False

    def get_connection_params(self):
        params = super().get_connection_params()
        if (settings.DMARKET_DATABASE_PREPARE
                and "prepare_threshold" not in self.settings_dict["OPTIONS"]):
            params["prepare_threshold"] = 5  # psycopg's default
        return params

    def prepared_cursor(self):
        """Django's cursor (its query log and execute wrappers), binding on the server: psycopg
        prepares a statement after it ran prepare_threshold times on the connection."""
        self._server_binding = True
        try:
            return self.cursor()
        finally:
            self._server_binding = False

    def create_cursor(self, name=None):
        if self._server_binding and not name:
            client, self.connection.cursor_factory = (self.connection.cursor_factory,
                                                      base.ServerBindingCursor)
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
