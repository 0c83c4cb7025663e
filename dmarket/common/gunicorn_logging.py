"""gunicorn's access log without the machines' answered heartbeats (`--logger-class
dmarket.common.gunicorn_logging.Logger`, as scripts/start_central_server.sh and the systemd
unit start the web server).

10,000 machines beating every 10 s would write 86 million lines a day (about 17 GB) saying only
that each machine is still there, which `dmarket_heartbeats_last_minute` and each machine's
`last_heartbeat` already say, and each line costs the server a dict of every header and
variable of the request to format. A heartbeat answered 2xx is left out; any other answer
(an unknown token, a removed machine, a server error) is logged as every other request is.

Imported by gunicorn's master before Django: nothing of Django here."""

import re

from gunicorn import glogging

HEARTBEAT = re.compile(r"/api/machines/[0-9]+/heartbeat/\Z")


class Logger(glogging.Logger):
    def access(self, resp, req, environ, request_time):
        status = resp.status
        code = status.split(None, 1)[0] if isinstance(status, str) else str(status)
        if (code.startswith("2") and environ.get("REQUEST_METHOD") == "POST"
                and HEARTBEAT.match(environ.get("PATH_INFO", ""))):
            return
        super().access(resp, req, environ, request_time)
