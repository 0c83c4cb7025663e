"""API tokens (`Authorization: Token <key>`, here against GET /api/auth/me/): the database
keeps digests only, so a copy of it authenticates nobody; a deleted token is revoked."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from dmarket.accounts.models import ApiToken, key_digest
from dmarket.conftest import client_for

URL = "/api/auth/me/"
INVALID = {"detail": "Invalid token."}

pytestmark = pytest.mark.django_db


def me(key):
    return client_for().get(URL, HTTP_AUTHORIZATION=f"Token {key}")


def test_the_database_holds_no_plaintext_key(alice):
    token = ApiToken.objects.get(user=alice)

    assert len(alice.token) == 40
    assert token.digest == key_digest(alice.token) != alice.token
    assert token.prefix == alice.token[:8]
    # Nowhere in the row, in any column, as the database itself has it.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table} WHERE id = %s", [token.pk])
        row = cursor.fetchone()
    assert not any(alice.token in str(value) for value in row)
    # And the key still authenticates.
    response = me(alice.token)
    assert response.status_code == 200
    assert response.json()["username"] == "alice"


def test_the_stored_digest_does_not_authenticate(alice):
    stored = ApiToken.objects.get(user=alice)

    for copied in (stored.digest, stored.prefix, stored.digest.upper()):
        response = me(copied)

        assert response.status_code == 401
        assert response.json() == INVALID


def test_a_key_differing_in_its_last_character_does_not_authenticate(alice):
    other = alice.token[:-1] + ("0" if alice.token[-1] != "0" else "1")

    response = me(other)

    assert response.status_code == 401
    assert response.json() == INVALID


def test_a_revoked_token_is_401_and_the_users_others_still_work(alice):
    _, second = ApiToken.issue(alice, name="login")
    ApiToken.objects.get(digest=key_digest(alice.token)).delete()

    response = me(alice.token)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == INVALID
    assert me(second).status_code == 200


def test_each_issued_key_is_new(alice):
    keys = {ApiToken.issue(alice)[1] for _ in range(20)}

    assert len(keys) == 20
    assert all(len(key) == 40 and int(key, 16) >= 0 for key in keys)


def test_use_is_recorded_at_most_once_a_minute(alice):
    token = ApiToken.objects.get(user=alice)
    assert token.last_used_at is None

    before = timezone.now()
    assert me(alice.token).status_code == 200
    token.refresh_from_db()
    first = token.last_used_at
    assert first >= before

    assert me(alice.token).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at == first

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    assert me(alice.token).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at >= before


def test_a_refused_key_records_no_use(alice):
    alice.is_active = False
    alice.save()

    response = me(alice.token)

    assert response.status_code == 401
    assert response.json() == {"detail": "User inactive or deleted."}
    assert ApiToken.objects.get(user=alice).last_used_at is None

