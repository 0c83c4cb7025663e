"""Every request has an id (X-Request-ID, the proxy's when sane); a 500's body carries it
and the log holds the traceback on a line with it."""

import logging

import pytest
from dmarket.conftest import client_for
from dmarket.jobs import pricing

pytestmark = pytest.mark.django_db


def test_a_500_carries_the_request_id_and_the_log_has_the_traceback(alice, monkeypatch,
                                                                   caplog):
    def broken(self, request):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(pricing.PricesView, "get", broken)
    client = client_for(alice)
    client.raise_request_exception = False
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get("/api/prices/", HTTP_X_REQUEST_ID="req-42.a_b")

    assert response.status_code == 500
    assert response.json() == {
        "detail": "Internal server error; the operators have the details (request req-42.a_b).",
        "request_id": "req-42.a_b"}
    assert response["X-Request-ID"] == "req-42.a_b"
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info[0] is ZeroDivisionError
    assert record.request_id == "req-42.a_b"


def test_an_insane_request_id_is_replaced_by_a_new_one(alice):
    client = client_for(alice)
    response = client.get("/api/prices/", HTTP_X_REQUEST_ID="x" * 65)
    assert response.status_code == 200
    assert len(response["X-Request-ID"]) == 32
    assert response["X-Request-ID"] != "x" * 65
    other = client.get("/api/prices/")
    assert other["X-Request-ID"] != response["X-Request-ID"]
