import re

import orjson
from django.http import HttpResponse

from dmarket.accounts.models import key_digest
from dmarket.common.gunicorn_logging import STEADY as STEADY_MARK

from .services import STEADY_FIELDS, agent_security, heartbeat_timing, machine_heartbeat_steady

HEARTBEAT = re.compile(r"^/api/machines/([0-9]{1,18})/heartbeat/\Z")
TOKEN = re.compile(r"^Token ([0-9a-f]{40})\Z")
# A steady beat's body is a few short strings: a larger one is the full view's to read, after
# its authentication.
MAX_BODY = 4096
# What the full view's answer carries beside the body (DRF's, and the middleware after this
# one's), so that the two answers cannot be told apart.
HEADERS = {"Allow": "POST, OPTIONS", "X-Frame-Options": "DENY"}


class SteadyHeartbeatMiddleware:
    """A machine's steady heartbeat (ONLINE, nothing changed: almost every beat of thousands
    of machines), answered here with one statement that is also the token's check
    (machine_heartbeat_steady), without the rest of Django's and DRF's stack: that stack cost
    about 3 ms of CPU a beat, which held one 2-core server to ~600 beats a second.

    Anything else goes on, untouched, to the full view, which decides as it always has: a
    token that is not this machine's, a change of state or of any field, a body that is not
    a small JSON object of strings in UTF-8, an answer asked for in another format. The
    answer is the full view's, body and headers (a test compares them)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "POST":
            response = steady_heartbeat(request)
            if response is not None:
                return response
        return self.get_response(request)


def steady_heartbeat(request):
    match = HEARTBEAT.match(request.path_info)
    token = TOKEN.match(request.META.get("HTTP_AUTHORIZATION", ""))
    if (match is None or token is None or request.META.get("QUERY_STRING")
            or request.content_type != "application/json"
            or request.content_params.get("charset", "utf-8").lower() not in ("utf-8", "utf8")
            or request.META.get("HTTP_ACCEPT", "*/*") not in ("*/*", "application/json")):
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length > MAX_BODY:
        return None
    request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware would check it further on
    try:
        fields = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return None
    if type(fields) is not dict or not all(
            name in STEADY_FIELDS and type(value) is str and "\x00" not in value
            for name, value in fields.items()):
        return None
    interval, timeout = heartbeat_timing()
    recorded = machine_heartbeat_steady(int(match[1]), key_digest(token[1]), fields, timeout)
    if recorded is None:
        return None
    body = {"state": "ONLINE", "heartbeat_interval": interval, "heartbeat_timeout": timeout,
            **agent_security()}
    response = HttpResponse(orjson.dumps(body), content_type="application/json", headers=HEADERS)
    response["Content-Length"] = str(len(response.content))
    # No access-log line for it (dmarket.common.gunicorn_logging), but for the beat that
    # recorded its token's use: each machine token's use and source address are in the log
    # once a minute, as every token's are.
    if not recorded:
        request.META[STEADY_MARK] = True
    return response
