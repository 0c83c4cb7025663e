"""POST /api/auth/register/: anyone may sign up, so many times per client address; a refused
sign-up writes nothing."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.utils.dateparse import parse_datetime

from dmarket.accounts.models import ApiToken, key_digest
from dmarket.conftest import client_for
from dmarket.credits.models import Account, LedgerEntry

URL = "/api/auth/register/"
PASSWORD = "correct horse battery staple"
User = get_user_model()

pytestmark = pytest.mark.django_db


def row_counts():
    return {model.__name__: model.objects.count()
            for model in (User, ApiToken, Account, LedgerEntry)}


def register(body, address="127.0.0.1"):
    return client_for().post(URL, body, format="json", REMOTE_ADDR=address)


def bad_request(field, *messages):
    return {"detail": "; ".join(f"{field}: {m}" for m in messages),
            "errors": {field: list(messages)}}


def test_register_returns_the_user_and_a_token():
    response = register({"username": "carol", "password": PASSWORD, "email": "carol@example.org"})

    assert response.status_code == 201
    user = User.objects.get(username="carol")
    body = response.json()
    assert body == {
        "user": {"id": user.pk, "username": "carol", "email": "carol@example.org",
                 "is_staff": False, "date_joined": body["user"]["date_joined"]},
        "token": body["token"],
    }
    token = ApiToken.objects.get(user=user)
    assert (token.digest, token.prefix, token.name) == (
        key_digest(body["token"]), body["token"][:8], "register")
    assert parse_datetime(body["user"]["date_joined"]) == user.date_joined
    assert user.check_password(PASSWORD)
    assert not user.is_staff and not user.is_superuser


def test_the_token_from_register_authenticates():
    token = register({"username": "carol", "password": PASSWORD}).json()["token"]

    response = client_for().get("/api/auth/me/", HTTP_AUTHORIZATION=f"Token {token}")

    assert response.status_code == 200
    assert response.json()["username"] == "carol"


def test_email_is_optional():
    response = register({"username": "carol", "password": PASSWORD})

    assert response.status_code == 201
    assert response.json()["user"]["email"] == ""


def test_new_user_gets_the_signup_grant_once():
    key = register({"username": "carol", "password": PASSWORD}).json()["token"]

    user = User.objects.get(username="carol")
    rows = list(LedgerEntry.objects.filter(user=user).values_list("kind", "amount", "held", "key"))
    assert rows == [("grant", Decimal("100"), Decimal("0"), f"grant:signup:{user.pk}")]
    account = Account.objects.get(user=user)
    assert (account.balance, account.held, account.earned, account.spent) == (
        Decimal("100"), Decimal("0"), Decimal("0"), Decimal("0"))
    response = client_for().get("/api/credits/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.json()["balance"] == "100.000000"


def test_register_ignores_a_stale_authorization_header():
    # Sign-up must work for a client that still sends an old, invalid token.
    response = client_for().post(URL, {"username": "carol", "password": PASSWORD},
                                 format="json", HTTP_AUTHORIZATION="Token not-a-real-token")

    assert response.status_code == 201


@pytest.mark.parametrize("username", ["alice", "ALICE", "Alice", " alice "])
def test_taken_username_is_refused_whatever_its_case(alice, username):
    before = row_counts()

    response = register({"username": username, "password": PASSWORD})

    assert response.status_code == 400
    assert response.json() == bad_request("username", "This username is taken.")
    assert row_counts() == before


@pytest.mark.parametrize("password, messages", [
    ("short1!", ["This password is too short. It must contain at least 8 characters."]),
    ("password", ["This password is too common."]),
    ("48213975602817", ["This password is entirely numeric."]),
    ("carol1234", ["The password is too similar to the username."]),
    ("1234", ["This password is too short. It must contain at least 8 characters.",
              "This password is too common.", "This password is entirely numeric."]),
    ("", ["This field may not be blank."]),
    ("x" * 129, ["Ensure this field has no more than 128 characters."]),
    ("pass\x00word-long", ["Null characters are not allowed."]),
    (None, ["This field may not be null."]),
])
def test_weak_or_invalid_password_is_refused(password, messages):
    before = row_counts()

    response = register({"username": "carol", "password": password})

    assert response.status_code == 400
    assert response.json() == bad_request("password", *messages)
    assert row_counts() == before


@pytest.mark.parametrize("username, message", [
    ("carol smith", "Enter a valid username. This value may contain only letters, numbers, "
                    "and @/./+/-/_ characters."),
    ("carol;rm", "Enter a valid username. This value may contain only letters, numbers, "
                 "and @/./+/-/_ characters."),
    ("", "This field may not be blank."),
    ("   ", "This field may not be blank."),
    ("c" * 151, "Ensure this field has no more than 150 characters."),
    ("car\x00ol", ["Enter a valid username. This value may contain only letters, numbers, "
                    "and @/./+/-/_ characters.", "Null characters are not allowed."]),
    (None, "This field may not be null."),
    (["carol"], "Not a valid string."),
])
def test_invalid_username_is_refused(username, message):
    before = row_counts()

    response = register({"username": username, "password": PASSWORD})

    messages = message if isinstance(message, list) else [message]
    assert response.status_code == 400
    assert response.json() == bad_request("username", *messages)
    assert row_counts() == before


@pytest.mark.parametrize("email, message", [
    ("not-an-email", "Enter a valid email address."),
    ("carol@", "Enter a valid email address."),
    ("carol example.org", "Enter a valid email address."),
    # Passes the e-mail syntax check but not the users table's 254 characters.
    ("a" * 64 + "@" + ("b" * 63 + ".") * 3 + "org",
     "Ensure this field has no more than 254 characters."),
    (None, "This field may not be null."),
])
def test_bad_email_is_refused(email, message):
    before = row_counts()

    response = register({"username": "carol", "password": PASSWORD, "email": email})

    assert response.status_code == 400
    assert response.json() == bad_request("email", message)
    assert row_counts() == before


def test_missing_fields_are_named():
    before = row_counts()

    response = register({})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "username: This field is required.; password: This field is required.",
        "errors": {"username": ["This field is required."],
                   "password": ["This field is required."]},
    }
    assert row_counts() == before


def test_unknown_field_is_refused():
    # is_staff in particular must never be settable by signing up.
    before = row_counts()

    response = register({"username": "carol", "password": PASSWORD, "is_staff": True})

    assert response.status_code == 400
    assert response.json() == bad_request("is_staff", "Unknown field.")
    assert row_counts() == before


def test_unknown_field_is_reported_beside_other_errors():
    response = register({"password": PASSWORD, "nickname": "c"})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "username: This field is required.; nickname: Unknown field.",
        "errors": {"username": ["This field is required."], "nickname": ["Unknown field."]},
    }


def test_non_json_body_is_refused():
    before = row_counts()

    response = client_for().post(URL, "username=carol&password=x",
                                 content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "JSON parse error - Expecting value: line 1 column 1 (char 0)"}
    assert row_counts() == before


def test_form_encoded_body_is_refused():
    before = row_counts()

    response = client_for().post(URL, f"username=carol&password={PASSWORD}",
                                 content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert response.json() == {
        "detail": 'Unsupported media type "application/x-www-form-urlencoded" in request.'}
    assert row_counts() == before


@pytest.mark.parametrize("body, kind", [
    ([{"username": "carol", "password": PASSWORD}], "list"),
    ("carol", "str"),
    (42, "int"),
])
def test_json_that_is_not_an_object_is_refused(body, kind):
    before = row_counts()

    response = register(body)

    message = f"Invalid data. Expected a dictionary, but got {kind}."
    assert response.status_code == 400
    assert response.json() == {"detail": message, "errors": {"non_field_errors": [message]}}
    assert row_counts() == before


def test_json_null_is_refused():
    response = client_for().post(URL, "null", content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "No data provided",
                               "errors": {"non_field_errors": ["No data provided"]}}


def test_deeply_nested_json_is_a_400_not_a_crash():
    before = row_counts()

    response = client_for().post(URL, "[" * 100_000, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - nested too deeply."}
    assert row_counts() == before


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_are_not_allowed(method):
    response = getattr(client_for(), method)(URL)

    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}


# --- Throttling -----------------------------------------------------------------------------

@pytest.fixture
def rate(settings, monkeypatch):
    """Two sign-ups an hour per address, from an empty history, the throttles' clock stopped
    (so that the wait they give is exact)."""
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "timer", lambda self: 1_000_000.0)
    settings.DMARKET_REGISTER_RATE = "2/hour"
    caches["throttle"].clear()


def test_signups_past_the_rate_from_one_address_are_429(rate):
    # Refused sign-ups count too.
    assert register({"username": "carol", "password": PASSWORD}).status_code == 201
    assert register({"username": "carol", "password": PASSWORD}).status_code == 400
    before = row_counts()

    response = register({"username": "dave", "password": PASSWORD})

    assert response.status_code == 429
    assert response["Retry-After"] == "3600"
    assert response.json() == {
        "detail": "Request was throttled. Expected available in 3600 seconds."}
    assert row_counts() == before
    # Another address has its own allowance.
    assert register({"username": "dave", "password": PASSWORD}, "192.0.2.1").status_code == 201
