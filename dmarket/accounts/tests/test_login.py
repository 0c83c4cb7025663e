"""POST /api/auth/login/: a username and password buy a new API token of the user's."""

import pytest
from django.contrib.auth import get_user_model

from dmarket.accounts.models import ApiToken, key_digest
from dmarket.conftest import client_for
from dmarket.credits.models import Account, LedgerEntry

URL = "/api/auth/login/"
PASSWORD = "a long test password 1"  # what conftest's make_user gives every user
WRONG = {"detail": "Wrong username or password."}
User = get_user_model()

pytestmark = pytest.mark.django_db


def row_counts():
    return {model.__name__: model.objects.count()
            for model in (User, ApiToken, Account, LedgerEntry)}


def login(body):
    return client_for().post(URL, body, format="json")


def whoami(key):
    return client_for().get("/api/auth/me/", HTTP_AUTHORIZATION=f"Token {key}")


def test_login_issues_a_new_token_beside_the_one_register_gave():
    registered = client_for().post("/api/auth/register/",
                                   {"username": "carol", "password": "correct horse battery"},
                                   format="json")
    assert registered.status_code == 201

    response = login({"username": "carol", "password": "correct horse battery"})

    assert response.status_code == 200
    key = response.json()["token"]
    assert response.json() == {"token": key}
    assert key != registered.json()["token"]
    carol = User.objects.get(username="carol")
    token = ApiToken.objects.get(digest=key_digest(key))
    assert (token.user, token.name, token.prefix) == (carol, "login", key[:8])
    for key in (key, registered.json()["token"]):
        assert whoami(key).status_code == 200
        assert whoami(key).json()["username"] == "carol"


def test_login_twice_gives_two_tokens_both_valid(alice):
    first = login({"username": "alice", "password": PASSWORD})
    second = login({"username": "alice", "password": PASSWORD})

    assert first.status_code == second.status_code == 200
    keys = {first.json()["token"], second.json()["token"], alice.token}
    assert len(keys) == 3
    assert ApiToken.objects.filter(user=alice).count() == 3
    assert {whoami(key).json()["username"] for key in keys} == {"alice"}


def test_login_creates_a_token_for_a_user_without_one(db):
    # e.g. a user made with createsuperuser or in the admin.
    user = User.objects.create_user("dave", "", PASSWORD)

    response = login({"username": "dave", "password": PASSWORD})

    assert response.status_code == 200
    key = response.json()["token"]
    assert len(key) == 40
    assert ApiToken.objects.get(user=user).digest == key_digest(key)


def test_login_writes_one_token_and_no_ledger_rows(alice):
    before = row_counts()

    login({"username": "alice", "password": PASSWORD})

    assert row_counts() == before | {"ApiToken": before["ApiToken"] + 1}


@pytest.mark.parametrize("body", [
    {"username": "alice", "password": "not the password"},
    {"username": "alice", "password": PASSWORD + " "},
    {"username": "nobody", "password": PASSWORD},
])
def test_wrong_username_or_password_is_401(alice, body):
    before = row_counts()

    response = login(body)

    assert response.status_code == 401
    assert response.json() == WRONG
    assert row_counts() == before


def test_inactive_user_cannot_log_in(alice):
    alice.is_active = False
    alice.save()

    response = login({"username": "alice", "password": PASSWORD})

    assert response.status_code == 401
    assert response.json() == WRONG


@pytest.mark.parametrize("body, errors", [
    ({}, {"username": ["This field is required."], "password": ["This field is required."]}),
    ({"username": "alice"}, {"password": ["This field is required."]}),
    ({"password": PASSWORD}, {"username": ["This field is required."]}),
    ({"username": "", "password": ""}, {"username": ["This field may not be blank."],
                                        "password": ["This field may not be blank."]}),
    ({"username": None, "password": PASSWORD}, {"username": ["This field may not be null."]}),
    ({"username": ["alice"], "password": PASSWORD}, {"username": ["Not a valid string."]}),
    ({"username": "alice", "password": PASSWORD, "remember": True},
     {"remember": ["Unknown field."]}),
])
def test_bad_input_is_400(alice, body, errors):
    before = row_counts()

    response = login(body)

    detail = "; ".join(f"{field}: {m}" for field, messages in errors.items() for m in messages)
    assert response.status_code == 400
    assert response.json() == {"detail": detail, "errors": errors}
    assert row_counts() == before


def test_a_json_list_is_400(alice):
    response = login([{"username": "alice", "password": PASSWORD}])

    message = "Invalid data. Expected a dictionary, but got list."
    assert response.status_code == 400
    assert response.json() == {"detail": message, "errors": {"non_field_errors": [message]}}


def test_non_json_body_is_400():
    response = client_for().post(URL, "{username: alice}", content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - Expecting property name enclosed "
                                          "in double quotes: line 1 column 2 (char 1)"}


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_are_not_allowed(method):
    response = getattr(client_for(), method)(URL)

    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}
