"""The operators' admin of API tokens: whose, since when, last used when; never a key.
Deleting one revokes it."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dmarket.accounts.models import ApiToken, key_digest
from dmarket.conftest import client_for

URL = "/admin/accounts/apitoken/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(db):
    root = get_user_model().objects.create_superuser("root", "r@example.org", "a long pw 1")
    client = Client()
    client.force_login(root)
    return client


def me(key):
    return client_for().get("/api/auth/me/", HTTP_AUTHORIZATION=f"Token {key}")


def test_tokens_are_listed_by_prefix_and_user_without_key_or_digest(admin_client, alice, bob):
    me(alice.token)

    response = admin_client.get(URL)

    assert response.status_code == 200
    text = response.content.decode()
    assert ">alice<" in text and ">bob<" in text
    for user in (alice, bob):
        assert f"{user.token[:8]}…" in text
        assert user.token not in text
        assert key_digest(user.token) not in text


def test_a_tokens_page_shows_no_key_and_cannot_be_edited(admin_client, alice):
    token = ApiToken.objects.get(user=alice)

    response = admin_client.get(f"{URL}{token.pk}/change/")

    assert response.status_code == 200
    text = response.content.decode()
    assert f"{alice.token[:8]}…" in text and "alice" in text
    assert alice.token not in text and token.digest not in text
    assert admin_client.post(f"{URL}{token.pk}/change/", {"name": "x"}).status_code == 403
    token.refresh_from_db()
    assert token.name == "test"


def test_tokens_cannot_be_added_there(admin_client):
    assert admin_client.get(f"{URL}add/").status_code == 403


def test_deleting_a_token_revokes_it(admin_client, alice):
    token = ApiToken.objects.get(user=alice)

    response = admin_client.post(f"{URL}{token.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not ApiToken.objects.filter(pk=token.pk).exists()
    assert me(alice.token).status_code == 401
    assert me(alice.token).json() == {"detail": "Invalid token."}


def test_the_bulk_delete_action_revokes_the_selected(admin_client, alice, bob):
    token = ApiToken.objects.get(user=alice)

    response = admin_client.post(URL, {"action": "delete_selected",
                                       "_selected_action": [token.pk], "post": "yes"})

    assert response.status_code == 302
    assert list(ApiToken.objects.values_list("user__username", flat=True)) == ["bob"]
    assert me(alice.token).status_code == 401
    assert me(bob.token).status_code == 200
