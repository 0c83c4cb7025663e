"""manage.py operator_token: a new token of the operator's at each run (only digests are kept,
so none can be printed again), each one valid."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from dmarket.accounts.models import ApiToken, key_digest
from dmarket.conftest import client_for

pytestmark = pytest.mark.django_db


def operator_token():
    out, err = io.StringIO(), io.StringIO()
    call_command("operator_token", stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


def test_each_run_prints_a_new_valid_token_of_the_operators(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    root = get_user_model().objects.create_superuser("root", "", "a long test password 1")

    (first, err), (second, _) = operator_token(), operator_token()

    assert err == ""
    assert first != second and len(first) == len(second) == 40
    for key in (first, second):
        token = ApiToken.objects.get(digest=key_digest(key))
        assert (token.user, token.name) == (root, "operator_token")
        response = client_for().get("/api/auth/me/", HTTP_AUTHORIZATION=f"Token {key}")
        assert response.status_code == 200
        assert response.json()["username"] == "root"


def test_without_an_operator_one_is_made(monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_USERNAME", raising=False)

    key, err = operator_token()

    assert "Created the operator account 'admin'" in err
    token = ApiToken.objects.get(digest=key_digest(key))
    assert token.user.username == "admin" and token.user.is_superuser
