"""The web server's front (dmarket/common/front.py), started by the real
scripts/start_web_server.sh (start_central_server.sh's web part, without the market's daemons,
which would police a Spark master) on the test database: nginx on the address, the machines'
heartbeats to a pool of sync workers, the rest to the gthread pool, each on a Unix socket;
a client cannot name its own address, nor hold the heartbeat pool by sending slowly."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from django.core.management import CommandError, call_command
from django.db import connection

from dmarket.accounts.models import ApiToken
from dmarket.cluster.testing import database_url, free_port, wait_for
from dmarket.common.front import nginx_binary, nginx_conf
from dmarket.conftest import machine_client
from dmarket.wsgi import application

from ...machines.tests.test_machine_heartbeat import make_machine, url

ROOT = Path(__file__).resolve().parents[3]
NGINX = nginx_binary()
ALIVE = {"worker_state": "ALIVE", "worker_id": "worker-1", "python": "3.11",
         "platform": "linux-x86_64"}


def environ_after(environ):
    """The environ Django's handler gets from dmarket.wsgi.application."""
    seen = {}

    def django(environ, start_response):
        seen.update(environ)
        return []

    from dmarket import wsgi
    original, wsgi.django_application = wsgi.django_application, django
    try:
        application(dict(environ), None)
    finally:
        wsgi.django_application = original
    return seen


def test_the_address_comes_from_x_real_ip_only_over_a_unix_socket():
    # gunicorn on a Unix socket: the peer has no address, and only the front can connect.
    behind = environ_after({"REMOTE_ADDR": "", "HTTP_X_REAL_IP": "203.0.113.7"})
    assert behind["REMOTE_ADDR"] == "203.0.113.7"
    assert "HTTP_X_REAL_IP" not in behind
    # gunicorn on TCP (DMARKET_FRONT=off): the header is the client's own claim.
    direct = environ_after({"REMOTE_ADDR": "198.51.100.4", "HTTP_X_REAL_IP": "203.0.113.7"})
    assert direct["REMOTE_ADDR"] == "198.51.100.4"
    # A Unix socket without the header keeps its empty address.
    assert environ_after({"REMOTE_ADDR": ""})["REMOTE_ADDR"] == ""


def conf(**overrides):
    return nginx_conf(**{"listen": "127.0.0.1:8000", "web_socket": "/r/web.sock",
                         "beat_socket": "/r/beat.sock", "run_dir": "/r", "log_file": "stderr",
                         "max_body_mb": 10, **overrides})


def test_the_scheme_passes_only_behind_the_operators_proxy(settings, tmp_path):
    assert 'proxy_set_header X-Forwarded-Proto "";' in conf()
    assert "X-Forwarded-Proto $http_x_forwarded_proto;" in conf(trust_forwarded_proto=True)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # BEHIND_PROXY
    out = tmp_path / "nginx.conf"
    call_command("front_conf", "--listen", "127.0.0.1:8000", "--web-socket", "w.sock",
                 "--beat-socket", "b.sock", "--run-dir", str(tmp_path), "--log-file", "stderr",
                 "--out", str(out))
    assert "X-Forwarded-Proto $http_x_forwarded_proto;" in out.read_text()


def test_ipv6_addresses_and_the_wildcard():
    assert "listen [2001:db8::1]:8000;" in conf(listen="2001:db8::1:8000")
    assert "listen [2001:db8::1]:8000;" in conf(listen="[2001:db8::1]:8000")
    # gunicorn's [::] served IPv4 too; nginx's does only when told.
    assert "listen [::]:8000 ipv6only=off;" in conf(listen=":::8000")
    assert "listen 0.0.0.0:8000;" in conf(listen="0.0.0.0:8000")


def test_a_path_the_configuration_cannot_hold_is_refused(tmp_path):
    with pytest.raises(CommandError, match="cannot name a path with spaces"):
        call_command("front_conf", "--listen", "127.0.0.1:8000", "--web-socket", "w.sock",
                     "--beat-socket", "b.sock", "--run-dir", str(tmp_path / "a b"),
                     "--log-file", "stderr", "--out", str(tmp_path / "nginx.conf"))
    with pytest.raises(ValueError):
        conf(web_socket="/r/web.sock; include /etc/passwd")


def start(env):
    started = subprocess.run([str(ROOT / "scripts" / "start_web_server.sh")], env=env,
                             capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "(front: nginx)" in started.stdout
    return started.stdout


@pytest.fixture(scope="module")
def front(tmp_path_factory, django_db_setup, django_db_blocker):
    """The web server as scripts/start_web_server.sh starts it with the front, on the test
    database, for the module's tests: (its URL, its data directory, its environment)."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip("nginx is not installed (install.sh installs it as root)")
    with django_db_blocker.unblock():
        if connection.vendor != "postgresql":
            pytest.skip("the server's processes need the test database on PostgreSQL")
        url = database_url()
    data = tmp_path_factory.mktemp("front") / "data"
    env = dict(os.environ, DATABASE_URL=url, DMARKET_DATA_DIR=str(data),
               DMARKET_PORT=str(free_port()), DMARKET_BIND="127.0.0.1", DMARKET_FRONT="nginx",
               DJANGO_SETTINGS_MODULE="dmarket.settings", SECRET_KEY="front test")
    env.pop("DJANGO_SUPERUSER_USERNAME", None)
    try:
        start(env)
        yield f"http://127.0.0.1:{env['DMARKET_PORT']}", data, env
    finally:
        subprocess.run([str(ROOT / "scripts" / "stop_central_server.sh")], env=env,
                       capture_output=True, timeout=120)


# One server for the module, on one xdist worker (each would start its own).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("front")]


def test_the_pools_sockets_are_the_server_users_alone(front):
    _, data, _ = front
    server = data / "run" / "server"
    assert server.stat().st_mode & 0o777 == 0o700
    assert {p.name for p in server.glob("*.sock")} == {"web.sock", "beat.sock"}


def test_heartbeats_go_to_the_sync_pool_and_the_rest_to_the_web_pool(front, alice):
    base, data, env = front
    machine = make_machine(alice)
    key = machine_client(machine).key
    auth = {"Authorization": f"Token {key}"}
    assert requests.post(base + url(machine), json=ALIVE, headers=auth,
                         timeout=10).status_code == 200

    # Killed as a crash kills it: its pid file stays behind, naming a process that is gone.
    pidfile = data / "run" / "server" / "heartbeat.pid"
    group = os.getpgid(int(pidfile.read_text()))
    assert group != os.getpgrp()  # gunicorn --daemon leads a group of its own
    os.killpg(group, signal.SIGKILL)
    try:
        only_the_heartbeat_pool_stopped(base, machine, auth)
    except BaseException:
        start(env)  # for the module's other tests
        raise
    # The script starts again only what does not run.
    output = start(env)
    assert "heartbeat server started" in output
    assert "web server already running" in output and "nginx already running" in output
    assert requests.post(base + url(machine), json=ALIVE, headers=auth,
                         timeout=10).status_code == 200


def only_the_heartbeat_pool_stopped(base, machine, auth):
    wait_for(lambda: requests.post(base + url(machine), json=ALIVE, headers=auth,
                                   timeout=10).status_code == 502, 30,
             what="the heartbeat pool to stop")
    response = requests.post(base + url(machine), json=ALIVE, headers=auth, timeout=10)
    assert response.json() == {"detail": "The server is not answering; try again shortly."}
    # Only the heartbeat route was the stopped pool's.
    assert requests.get(base + f"/api/machines/{machine.pk}/", headers=auth,
                        timeout=10).status_code == 200
    assert requests.get(base + "/api/schema/", timeout=10).status_code == 200


def test_a_client_cannot_name_its_own_address(front):
    base, data, _ = front
    response = requests.post(base + "/api/auth/login/", json={"username": "x", "password": "y"},
                             headers={"X-Real-IP": "203.0.113.7"}, timeout=10)
    assert response.status_code == 401

    def logged():  # gunicorn writes the line after the answer has gone
        log = (data / "log" / "access.log").read_text().splitlines()
        return [line for line in log if "/api/auth/login/" in line]

    wait_for(logged, 10, what="the access log's line")
    (line,) = logged()
    assert line.startswith("127.0.0.1 - - [")


@pytest.mark.parametrize("header", [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "on"),
                                    ("X-Forwarded-Protocol", "ssl")])
def test_a_client_cannot_name_the_scheme(front, alice, header):
    """gunicorn trusts every header from a Unix socket's peer, the scheme's among them; without
    DMARKET_BEHIND_PROXY the front drops a client's own. The scheme shows in the links of a
    page (request.build_absolute_uri)."""
    base, _, _ = front
    make_machine(alice)
    make_machine(alice)
    _, key = ApiToken.issue(alice, name="cli")
    response = requests.get(base + "/api/machines/?page_size=1", timeout=10,
                            headers={"Authorization": f"Token {key}", header[0]: header[1]})
    assert response.status_code == 200
    assert response.json()["next"].startswith(base + "/api/machines/?")


def beat_request(machine, key, body):
    return (f"POST {url(machine)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Token {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()


def test_slow_senders_cannot_hold_the_heartbeat_pool(front, alice):
    """Two sync workers answer every beat; a client that sends a beat's body slowly, or never
    finishes it, is nginx's to wait for, not a worker's."""
    base, _, _ = front
    machine = make_machine(alice)
    key = machine_client(machine).key
    host, port = base.removeprefix("http://").split(":")
    body = b'{"worker_state": "ALIVE"}'
    stalled = []
    for _ in range(20):  # ten times the pool's workers
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(beat_request(machine, key, body) + body[:5])
        stalled.append(s)
    try:
        time.sleep(1)
        started = time.monotonic()
        response = requests.post(base + url(machine), json=ALIVE,
                                 headers={"Authorization": f"Token {key}"}, timeout=20)
        assert response.status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for s in stalled:
            s.close()


def test_a_beat_larger_than_any_beat_is_refused_by_the_front(front, alice):
    base, _, _ = front
    machine = make_machine(alice)
    key = machine_client(machine).key
    response = requests.post(base + url(machine), data=b"{" + b" " * 100_000 + b"}",
                             headers={"Authorization": f"Token {key}",
                                      "Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is larger than the server accepts."}


def test_the_script_starts_under_production_settings(front, tmp_path):
    """Its checks ask the server from this host, by the loopback address: a server that
    answers them with a 400 (a host name ALLOWED_HOSTS leaves out) or a redirect to HTTPS is
    up all the same."""
    _, _, base_env = front
    env = dict(base_env, DMARKET_DATA_DIR=str(tmp_path / "data"), DMARKET_PORT=str(free_port()),
               ALLOWED_HOSTS="market.example.org", DMARKET_SSL_REDIRECT="1")
    try:
        start(env)
        response = requests.get(f"http://127.0.0.1:{env['DMARKET_PORT']}/api/auth/me/",
                                headers={"Host": "market.example.org"}, allow_redirects=False,
                                timeout=10)
        assert response.status_code == 301
        assert response.headers["Location"] == "https://market.example.org/api/auth/me/"
    finally:
        subprocess.run([str(ROOT / "scripts" / "stop_central_server.sh")], env=env,
                       capture_output=True, timeout=120)
