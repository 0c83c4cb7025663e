"""Migration 0002: DRF authtoken's plaintext rows become ApiTokens' digests, and the keys
clients already hold keep working."""

import importlib
from datetime import datetime, timezone

import pytest
from django.apps import apps
from django.db import connection

from dmarket.accounts.models import ApiToken, key_digest
from dmarket.conftest import client_for

migration = importlib.import_module("dmarket.accounts.migrations.0002_from_authtoken")

pytestmark = pytest.mark.django_db

CREATED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


@pytest.fixture
def authtoken_table(db):
    """authtoken_token as DRF's migrations make it (in the test's transaction)."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    with connection.schema_editor() as editor:
        editor.execute(
            f"CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            f"created timestamp with time zone NOT NULL, user_id bigint NOT NULL UNIQUE "
            f"REFERENCES {User._meta.db_table} (id))")
    return "authtoken_token"


def run_migration():
    with connection.schema_editor() as editor:
        migration.from_authtoken(apps, editor)


def test_existing_keys_become_digests_and_keep_working(authtoken_table, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    old = {alice: "0123456789abcdef0123456789abcdef01234567",
           bob: "fedcba9876543210fedcba9876543210fedcba98"}
    with connection.cursor() as cursor:
        for user, key in old.items():
            cursor.execute("INSERT INTO authtoken_token (key, created, user_id) "
                           "VALUES (%s, %s, %s)", [key, CREATED, user.pk])

    run_migration()

    for user, key in old.items():
        token = ApiToken.objects.get(digest=key_digest(key))
        assert (token.user, token.prefix, token.name, token.created_at) == (
            user, key[:8], "authtoken", CREATED)
        response = client_for().get("/api/auth/me/", HTTP_AUTHORIZATION=f"Token {key}")
        assert response.status_code == 200
        assert response.json()["username"] == user.username
        # The token make_user gave still works beside it.
        assert client_for(user).get("/api/auth/me/").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)


def test_without_the_table_it_does_nothing(alice):
    assert "authtoken_token" not in connection.introspection.table_names()

    run_migration()

    assert ApiToken.objects.count() == 1
