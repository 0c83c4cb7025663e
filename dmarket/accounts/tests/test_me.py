"""GET /api/auth/me/: who the token belongs to."""

import pytest
from django.utils.dateparse import parse_datetime

from dmarket.conftest import client_for

URL = "/api/auth/me/"

pytestmark = pytest.mark.django_db


def expected(user, body):
    return {"id": user.pk, "username": user.username, "email": "u@example.org",
            "is_staff": user.is_staff, "date_joined": body["date_joined"]}


def test_me_describes_the_tokens_user(alice, bob):
    response = client_for(alice).get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body == expected(alice, body)
    assert parse_datetime(body["date_joined"]) == alice.date_joined


def test_me_says_whether_the_user_is_staff(staff):
    response = client_for(staff).get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body == expected(staff, body)
    assert body["is_staff"] is True


def test_anonymous_is_401_json_not_a_redirect():
    response = client_for().get(URL)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.parametrize("header, detail", [
    ("Token not-a-real-token", "Invalid token."),
    ("Token", "Invalid token header. No credentials provided."),
    ("Token two words", "Invalid token header. Token string should not contain spaces."),
    # Another scheme is not ours to judge: the request is simply anonymous.
    ("Bearer 0123456789abcdef", "Authentication credentials were not provided."),
])
def test_bad_authorization_header_is_401(alice, header, detail):
    response = client_for().get(URL, HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json() == {"detail": detail}


def test_inactive_users_token_is_refused(alice):
    alice.is_active = False
    alice.save()

    response = client_for(alice).get(URL)

    assert response.status_code == 401
    assert response.json() == {"detail": "User inactive or deleted."}


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_other_methods_are_not_allowed(alice, method):
    response = getattr(client_for(alice), method)(URL)

    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}


@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_other_methods_are_401(method):
    response = getattr(client_for(), method)(URL)

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
