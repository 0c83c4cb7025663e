"""A NUL byte in a query parameter or a path is a 400 that says so, never a 500 (an outside
fuzzer found GET /api/files/?pattern=%00 answering 500: PostgreSQL refuses NUL in strings)."""

import pytest

from dmarket.conftest import client_for

NUL = {"detail": "The request's path or query string holds a NUL character (%00), which no "
                 "parameter may hold."}

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", [
    "/api/files/?pattern=%00",
    "/api/files/?pattern=a%00b",
    "/api/files/?owner=%00",
    "/api/jobs/?status=QUEUED%00",
    "/api/credits/transactions/?kind=%00",
    "/api/files/a%00b",
])
def test_a_nul_byte_is_a_400(alice, url):
    response = client_for(alice).get(url)

    assert response.status_code == 400
    assert response.json() == NUL


def test_it_is_refused_before_authentication(db):
    response = client_for().get("/api/files/?pattern=%00")
    assert (response.status_code, response.json()) == (400, NUL)


def test_a_pattern_without_one_still_works(alice):
    response = client_for(alice).get("/api/files/?pattern=a*")
    assert response.status_code == 200
