"""POST /api/auth/login/: a username and password buy a new API token of the user's;
attempts are limited per client address and per username."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches

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


def login(body, address="127.0.0.1"):
    return client_for().post(URL, body, format="json", REMOTE_ADDR=address)


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


# --- Throttling -----------------------------------------------------------------------------

@pytest.fixture
def clock(monkeypatch):
    """The throttles' time, stopped (so that the waits they give are exact) at clock[0]."""
    from rest_framework.throttling import SimpleRateThrottle

    now = [1_000_000.0]
    monkeypatch.setattr(SimpleRateThrottle, "timer", lambda self: now[0])
    return now


@pytest.fixture
def rates(settings, clock):
    """Low limits, from an empty history."""
    settings.DMARKET_LOGIN_RATE = "3/min"
    settings.DMARKET_LOGIN_USERNAME_RATE = "5/hour"
    caches["throttle"].clear()
    return settings


def throttled(response, wait):
    assert response.status_code == 429
    assert response["Retry-After"] == str(wait)
    assert response.json() == {
        "detail": f"Request was throttled. Expected available in {wait} seconds."}
    return True


def test_logins_past_the_rate_from_one_address_are_429(rates, alice, bob):
    before = row_counts()
    # Right or wrong, every attempt counts, whichever the username.
    bodies = [{"username": "alice", "password": PASSWORD},
              {"username": "bob", "password": "not the password"},
              {"username": "nobody", "password": PASSWORD}]
    assert [login(body).status_code for body in bodies] == [200, 401, 401]

    response = login({"username": "bob", "password": PASSWORD})

    assert throttled(response, 60)
    assert row_counts() == before | {"ApiToken": before["ApiToken"] + 1}
    # Another address has its own allowance.
    assert login({"username": "bob", "password": PASSWORD}, "192.0.2.7").status_code == 200


def test_logins_to_one_username_from_many_addresses_are_429(rates, alice, bob):
    for n in range(5):
        response = login({"username": "alice", "password": f"guess {n}"}, f"192.0.2.{n}")
        assert response.status_code == 401

    response = login({"username": "alice", "password": PASSWORD}, "198.51.100.1")

    assert throttled(response, 3600)
    # Whatever its case: to sign-up, ALICE is alice.
    assert throttled(login({"username": "ALICE", "password": PASSWORD}, "198.51.100.2"), 3600)
    # The limit is the username's: another account logs in from the same address.
    assert login({"username": "bob", "password": PASSWORD}, "198.51.100.1").status_code == 200


def test_the_wait_is_until_the_oldest_attempt_leaves_the_window(rates, clock, alice):
    for step in (0, 10, 20):
        clock[0] = 1_000_000.0 + step
        assert login({"username": "alice", "password": PASSWORD}).status_code == 200

    clock[0] = 1_000_045.0
    assert throttled(login({"username": "alice", "password": PASSWORD}), 15)

    clock[0] = 1_000_060.0
    assert login({"username": "alice", "password": PASSWORD}).status_code == 200


def test_a_forwarded_for_header_does_not_buy_a_new_allowance(rates, alice):
    for n in range(3):
        response = client_for().post(URL, {"username": "alice", "password": PASSWORD},
                                     format="json", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
        assert response.status_code == 200

    response = client_for().post(URL, {"username": "alice", "password": PASSWORD},
                                 format="json", HTTP_X_FORWARDED_FOR="203.0.113.9")

    assert throttled(response, 60)


def test_an_empty_rate_turns_the_limits_off(rates, alice):
    rates.DMARKET_LOGIN_RATE = rates.DMARKET_LOGIN_USERNAME_RATE = ""

    statuses = {login({"username": "alice", "password": PASSWORD}).status_code
                for _ in range(8)}

    assert statuses == {200}
