"""The tokens of DRF's authtoken app (plaintext keys, in authtoken_token), where a database
still has them, become ApiTokens (their digests), so that existing clients keep working; the
plaintext rows are then deleted. SQL, not authtoken's models: the app is no longer installed,
and no migration of ours depends on it. Its (empty) table and its rows in django_migrations
stay, so that installing it again would find them consistent."""

import hashlib
from datetime import timezone

from django.db import migrations
from django.utils.dateparse import parse_datetime

TABLE = "authtoken_token"


def aware(value):
    # SQLite gives the column back as text or as a naive datetime, both in UTC.
    value = parse_datetime(value) if isinstance(value, str) else value
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def from_authtoken(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if TABLE not in connection.introspection.table_names(cursor):
            return
        quote = connection.ops.quote_name
        cursor.execute(f"SELECT {quote('key')}, {quote('user_id')}, {quote('created')} "
                       f"FROM {quote(TABLE)}")
        rows = cursor.fetchall()
        ApiToken = apps.get_model("accounts", "ApiToken")
        ApiToken.objects.using(connection.alias).bulk_create([
            ApiToken(user_id=user_id, name="authtoken", prefix=key[:8],
                     digest=hashlib.sha256(key.encode()).hexdigest(), created_at=aware(created))
            for key, user_id, created in rows])
        cursor.execute(f"DELETE FROM {quote(TABLE)}")


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
    ]

    # Backwards: the ApiTokens stay (their keys cannot be recovered to give back).
    operations = [
        migrations.RunPython(from_authtoken, migrations.RunPython.noop, elidable=True),
    ]
