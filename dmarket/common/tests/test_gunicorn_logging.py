"""gunicorn's access log as the web server writes it (dmarket.common.gunicorn_logging.Logger,
gunicorn's own logger and configuration, a real file): a heartbeat answered by the short way
(which marks its environ: test_heartbeat_steady.py) is left out; every other request is
written, heartbeats that went the full way, recorded their token's use or were refused
included."""

import re
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from dmarket.common.gunicorn_logging import STEADY, Logger

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def access_log(tmp_path):
    """request(method, path, status): one request through the logger; lines(): the log."""
    path = tmp_path / "access.log"
    config = Config()
    config.set("accesslog", str(path))
    logger = Logger(config)

    def request(method, path_info, status, **extra):
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path_info, "RAW_URI": path_info,
                   "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
                   "QUERY_STRING": "", **extra}
        response = SimpleNamespace(status=status, headers=[("Content-Length", "2")], sent=2)
        logger.access(response, SimpleNamespace(headers=[("HOST", "market")]), environ,
                      timedelta(microseconds=1500))

    def lines():
        for handler in logger.access_log.handlers:
            handler.flush()
        return path.read_text().splitlines()

    yield SimpleNamespace(request=request, lines=lines)
    for handler in logger.access_log.handlers:
        handler.close()


def test_a_heartbeat_answered_by_the_short_way_is_not_logged(access_log):
    access_log.request("POST", "/api/machines/12/heartbeat/", "200 OK", **{STEADY: True})
    access_log.request("POST", "/api/machines/7/heartbeat/", 200, **{STEADY: True})

    assert access_log.lines() == []


@pytest.mark.parametrize("method, path, status", [
    # The full way (every change) and the beat that records its token's use, once a minute.
    ("POST", "/api/machines/12/heartbeat/", "200 OK"),
    ("POST", "/api/machines/12/heartbeat/", "401 Unauthorized"),
    ("POST", "/api/machines/12/heartbeat/", "409 Conflict"),
    ("POST", "/api/machines/12/heartbeat/", "500 Internal Server Error"),
    ("GET", "/api/machines/12/heartbeat/", "405 Method Not Allowed"),
    ("GET", "/api/machines/12/", "200 OK"),
    ("POST", "/api/jobs/", "201 Created"),
])
def test_every_other_request_is_logged(access_log, method, path, status):
    access_log.request(method, path, status)

    [line] = access_log.lines()
    assert re.search(rf'"{method} {re.escape(path)} HTTP/1.1" {status.split()[0]} 2 ', line), line


def test_the_web_server_is_started_with_it():
    script = (ROOT / "scripts" / "start_web_server.sh").read_text()
    unit = (ROOT / "conf" / "systemd" / "dmarket-web.service").read_text()
    beats = (ROOT / "conf" / "systemd" / "dmarket-heartbeat.service").read_text()
    docker = (ROOT / "Dockerfile").read_text()
    for text in (script, unit, beats, docker):
        assert "--logger-class dmarket.common.gunicorn_logging.Logger" in " ".join(text.split())
