"""GET /api/health/: 200 when the database, the Spark master and the history server answer,
503 naming what does not (real HTTP servers stand in for the master and the history)."""

import http.server
import json
import threading

import pytest

from dmarket.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def spark_uis(settings):
    """A real HTTP server answering the master's /json/ and the history's applications."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            known = self.path == "/json/" or self.path.startswith("/api/v1/applications")
            body = json.dumps({"workers": []} if self.path == "/json/" else []).encode()
            self.send_response(200 if known else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # Polled every 10 ms: shutdown() waits for a poll (0.5 s by default).
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    settings.DMARKET_SPARK_MASTER_UI = url
    settings.DMARKET_HISTORY_URL = url
    yield url
    server.shutdown()


def shape(body):
    return {name: {k: v for k, v in check.items() if k != "ms"}
            for name, check in body["checks"].items()}


def test_healthy_is_200_without_a_token(spark_uis):
    response = client_for().get("/api/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert shape(body) == {"database": {"ok": True}, "master": {"ok": True},
                           "history": {"ok": True}}
    assert all(isinstance(c["ms"], int) for c in body["checks"].values())


def test_a_master_that_does_not_answer_is_a_503_naming_it(spark_uis, settings):
    settings.DMARKET_SPARK_MASTER_UI = "http://127.0.0.1:9"

    response = client_for().get("/api/health/")

    assert response.status_code == 503
    assert response.json()["status"] == "failing"
    assert shape(response.json()) == {"database": {"ok": True},
                                      "master": {"ok": False, "error": "ConnectionError"},
                                      "history": {"ok": True}}


def test_a_history_server_answering_an_error_is_a_503(spark_uis, settings):
    settings.DMARKET_HISTORY_URL = spark_uis + "/nope"

    response = client_for().get("/api/health/")

    assert response.status_code == 503
    assert shape(response.json())["history"] == {"ok": False, "error": "RuntimeError"}
