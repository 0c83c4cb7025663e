import contextlib
import contextvars
import logging
import re
import uuid
from urllib.parse import unquote_to_bytes

from django.http import JsonResponse


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class RejectNulMiddleware:
    """A NUL character in the path, the query string or a form's field (the dashboard's
    forms) is a 400 naming the problem: no name, pattern or parameter of the market may hold
    one, and PostgreSQL refuses it in any string (where it would surface as a 500). JSON
    bodies are the serializers' to check; uploaded files are bytes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or b"\x00" in unquote_to_bytes(query.replace("+", " ")):
            return JsonResponse({"detail": "The request's path or query string holds a NUL "
                                           "character (%00), which no parameter may hold."},
                                status=400)
        # The pages' forms only: Django's CSRF check parses their bodies anyway; the API
        # takes JSON (its views are exempt from that check and parse their own bodies).
        if (request.method == "POST" and not request.path.startswith("/api/")
                and request.content_type in FORM_TYPES
                and any("\x00" in key or any("\x00" in value for value in values)
                        for key, values in request.POST.lists())):
            return JsonResponse({"detail": "A field of the form holds a NUL character, which "
                                           "no field may hold."}, status=400)
        return self.get_response(request)


REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# The request being handled, for log lines (dmarket.common.middleware.RequestIdFilter).
current_request_id = contextvars.ContextVar("request_id", default="-")
# The row a daemon is handling ("job 12", "machine 3"), for log lines: set by RowGuard.
current_subject = contextvars.ContextVar("subject", default="")


@contextlib.contextmanager
def log_subject(subject):
    """Log lines written inside name `subject` (e.g. "job 12") in their context field."""
    token = current_subject.set(subject)
    try:
        yield
    finally:
        current_subject.reset(token)


class RequestIdMiddleware:
    """Every request gets an id: the proxy's X-Request-ID when it sends a sane one, else a new
    one. It is on every log line of the request, in the X-Request-ID response header and in a
    500's body, so that an operator finds the traceback a user reports."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        request.request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        token = current_request_id.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response["X-Request-ID"] = request.request_id
        return response


class RequestIdFilter(logging.Filter):
    """Gives every record `request_id` ("-" outside a request), `subject` (the daemon's row,
    or "") and `context`: the two together, what the plain format shows in brackets."""

    def filter(self, record):
        record.request_id = current_request_id.get()
        record.subject = current_subject.get()
        record.context = " ".join(part for part in (
            record.request_id if record.request_id != "-" else "", record.subject) if part) or "-"
        return True
