"""gunicorn's access log without the machines' steady heartbeats (`--logger-class
dmarket.common.gunicorn_logging.Logger`, as scripts/start_central_server.sh and the systemd
unit start the web server).

10,000 machines beating every 10 s would write 86 million lines a day (about 17 GB) saying only
that each machine is still there, which `dmarket_heartbeats_last_minute` and each machine's
`last_heartbeat` already say, and each line costs the server a dict of every header and
variable of the request to format. A beat answered by the short way
(dmarket.machines.middleware, which marks the request's environ) is left out, but for the
one a minute per token that records the token's use (so each machine token's use and address
are still seen once a minute). Every other beat is logged as every other request is: a change
of state, a refusal.

Imported by gunicorn's master before Django: nothing of Django here."""

from gunicorn import glogging

# Set in the WSGI environ by the short way; a client cannot set an environ key of this name
# (its headers arrive as HTTP_*).
STEADY = "dmarket.steady_heartbeat"


class Logger(glogging.Logger):
    def access(self, resp, req, environ, request_time):
        if environ.get(STEADY):
            return
        super().access(resp, req, environ, request_time)
