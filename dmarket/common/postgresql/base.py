"""Django's PostgreSQL backend, its timestamps read by psycopg's own (C) loader where that
gives the very same values.

Django reads every timestamptz through a Python subclass of psycopg's loader that only
replaces the result's tzinfo with the connection's time zone: psycopg then cannot use its C
loader, and a page of 50 jobs (200 timestamps) spent about 0.9 ms there. When Django's zone
for the connection is UTC (USE_TZ, no database TIME_ZONE) and the session's is "UTC" (Django
sets it so), psycopg's loader already gives tzinfo=datetime.timezone.utc, exactly what
Django's would; anything else keeps Django's loader."""

import datetime

from django.db.backends.postgresql import base
from psycopg.types.datetime import TimestamptzLoader  # psycopg registers its C version


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name=None):
        cursor = super().create_cursor(name)
        if (self.timezone is datetime.timezone.utc
                and self.connection.info.parameter_status("TimeZone") == "UTC"):
            cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        return cursor
