"""The central server's front: nginx (Debian's package) on the public address, before two
gunicorn pools on Unix sockets (scripts/start_web_server.sh, doc/deploy.md).

- Machines' heartbeats go to a pool of sync workers. A sync worker costs gunicorn about a
  third less CPU a request than a gthread worker (0.50 against 0.78 ms for a constant answer
  at 1,000 new connections a second), and the beat is most of a big market's requests. A
  sync worker is held by a slow client for as long as it sends or reads, so nginx reads each
  beat whole, and takes its answer whole, before and after a worker sees it.
- Everything else goes to the gthread pool, as without a front: a thread may stream a large
  download or the inference results for minutes. Uploads and answers pass through unbuffered
  (an upload is checked against the quota as it streams; the inference results are read as
  they come).

gunicorn behind it sees every request from a Unix socket, whose peer has no address: the
real one comes in X-Real-IP, which nginx sets (a client's own is overwritten).
`dmarket.wsgi` puts it back in REMOTE_ADDR for such requests only, so the login throttles,
the access log and everything else see what gunicorn alone would have. Only the server's
user can reach the sockets (their directory is its own, mode 0700). X-Forwarded-For passes
through as it came, counted only as DMARKET_NUM_PROXIES says (an operator's TLS proxy in
front); X-Forwarded-Proto only with DMARKET_BEHIND_PROXY, as Django reads it only then:
gunicorn trusts a Unix socket's peer, so a client's own would otherwise set the scheme.
"""

import os
import pwd
import shutil
from pathlib import Path

# A beat's body is a few hundred bytes of JSON; anything far larger is not a beat.
BEAT_MAX_BODY = "64k"
# nginx's temporary files, each kind in its own directory under run_dir/nginx.
TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
# What nginx's configuration cannot hold unquoted: a path with one of these is refused.
UNSAFE = set(" \t\n\r;{}#\"'\\$")


def nginx_binary():
    """Debian's nginx: on the PATH, or where the package puts it (/usr/sbin, often not on a
    user's PATH); it may not exist."""
    return shutil.which("nginx") or "/usr/sbin/nginx"


def check_path(path):
    if UNSAFE & set(str(path)):
        raise ValueError(f"{path}: nginx's configuration cannot name a path with spaces, "
                         "quotes or any of ;{}#$\\")
    return path


def nginx_conf(*, listen, web_socket, beat_socket, run_dir, log_file, max_body_mb,
               trust_forwarded_proto=False):
    """nginx's configuration: `listen` (host:port) in front of the two gunicorn pools' Unix
    sockets; its pid file and temporary files under `run_dir`, its errors in `log_file` (or
    "stderr"). gunicorn keeps the access log (dmarket/common/gunicorn_logging.py), so nginx
    keeps none. `trust_forwarded_proto`: pass a client's X-Forwarded-Proto on (an operator's
    TLS proxy in front, DMARKET_BEHIND_PROXY); otherwise it is dropped."""
    run_dir = Path(run_dir)
    for path in (web_socket, beat_socket, run_dir, log_file):
        check_path(path)
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if ":" in host:  # IPv6; the wildcard serves IPv4 too, as gunicorn's [::] does
        listen = f"[{host}]:{port}" + (" ipv6only=off" if host == "::" else "")
    temp = {name: run_dir / "nginx" / name for name in TEMP_DIRS}
    # Started by root, nginx would run its workers as nobody, who cannot reach the sockets:
    # they run as the server's user, as gunicorn's do.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    # gunicorn trusts every header of a Unix socket's peer, the scheme's among them
    # (X-Forwarded-Proto, -Ssl, -Protocol): only the operator's own proxy may name it.
    proto = "$http_x_forwarded_proto" if trust_forwarded_proto else '""'
    return f"""\
# Written by `manage.py front_conf` at each start (dmarket/common/front.py): edit that.
{user}worker_processes 1;
worker_rlimit_nofile 16384;
pid {run_dir / "nginx.pid"};
error_log {log_file} warn;

events {{
    worker_connections 8192;
}}

http {{
    access_log off;
    server_tokens off;
    # A header with an underscore (SCRIPT_NAME, X_Real_IP) never reaches gunicorn, which
    # would take it from a trusted peer (nginx's defaults, kept explicit).
    underscores_in_headers off;
    ignore_invalid_headers on;
    # Below the agents' 10 s beat: each beat comes on a new connection, as it came to
    # gunicorn alone (2 s), and 10,000 agents do not each hold one open.
    keepalive_timeout 5s;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};

    # No kept connections to the pools: gunicorn closes an idle one after 2 s, and nginx
    # does not resend a POST sent on a connection closed under it.
    upstream dmarket_web {{
        server unix:{web_socket};
    }}
    upstream dmarket_beat {{
        server unix:{beat_socket};
    }}

    server {{
        listen {listen};
        client_max_body_size {max_body_mb}m;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-Proto {proto};
        proxy_set_header X-Forwarded-Ssl "";
        proxy_set_header X-Forwarded-Protocol "";

        # The API's errors are JSON with a detail; so are the front's own.
        error_page 413 @too_large;
        error_page 502 @unavailable;
        error_page 504 @timed_out;
        location @too_large {{
            default_type application/json;
            return 413 '{{"detail": "The request body is larger than the server accepts."}}';
        }}
        location @unavailable {{
            default_type application/json;
            return 502 '{{"detail": "The server is not answering; try again shortly."}}';
        }}
        location @timed_out {{
            default_type application/json;
            return 504 '{{"detail": "The server did not answer in time."}}';
        }}

        location ~ ^/api/machines/[0-9]+/heartbeat/$ {{
            client_max_body_size {BEAT_MAX_BODY};
            client_body_timeout 10s;
            send_timeout 10s;
            proxy_read_timeout 60s;
            proxy_pass http://dmarket_beat;
        }}

        # Streamed both ways, as gunicorn alone streamed them; an upload, a download or the
        # inference results may pause for minutes, and a stream may last an hour. (gunicorn's
        # --timeout only restarts a worker that stops answering its arbiter.)
        location / {{
            proxy_request_buffering off;
            proxy_buffering off;
            client_body_timeout 5m;
            send_timeout 5m;
            proxy_send_timeout 5m;
            proxy_read_timeout 1h;
            proxy_pass http://dmarket_web;
        }}
    }}
}}
"""


def nginx_conf_write(out, **options):
    """Writes nginx_conf(**options) to `out`, after the temporary directories it names."""
    conf = nginx_conf(**options)
    for name in TEMP_DIRS:
        (Path(options["run_dir"]) / "nginx" / name).mkdir(parents=True, exist_ok=True)
    Path(out).write_text(conf)
