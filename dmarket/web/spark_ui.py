"""A job's Spark UI, from the history server, for that job's application only.

The history server has no users: every application's pages are open to whoever reaches it.
So the dashboard proxies a job's own pages alone, under /jobs/ID/spark/: its application's
pages (history/APP/...), their REST calls (api/v1/applications/APP/...) and Spark's static
files; every other path is a 404. The history server writes its links under the prefix we
send as X-Forwarded-Context (Spark's UIUtils.uiRoot), so no page needs rewriting.

The pages hold what the job's code wrote (job and stage descriptions, its properties): they
are served with a CSP sandbox that runs no script, so a hostile job's markup cannot act in
the dashboard's origin, as its owner or as an operator who looks. Spark's server-rendered
tabs (jobs, stages, storage, environment, SQL) work; its script-drawn parts (the executors
tab, timelines, DAGs) do not: the job's page lists the executors itself."""

import logging
import re
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse

from dmarket.common.api import visible_to
from dmarket.jobs.models import Job

# No script runs; nothing loads from or posts to another site (a job's markup could draw a
# sign-in form posting elsewhere, or images that track who looks).
SANDBOX = ("sandbox allow-same-origin allow-forms allow-popups; default-src 'self'; "
           "script-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
           "form-action 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'")
# What a path's segments may be: no '%' (requests would decode %2e into a dot that climbs
# out of the job's application), no ';' (a path parameter, which older Jettys strip).
SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
PASSED_HEADERS = ("Content-Type", "Content-Disposition", "Last-Modified", "Cache-Control")
TIMEOUT = 10

log = logging.getLogger(__name__)


def allowed(rest, app_id):
    """Whether the path (after /jobs/ID/spark/) is the job's application's own, or static."""
    parts = rest.split("/")
    # Only a trailing slash may leave an empty segment; none may be '.', '..' or encoded.
    if parts[-1] == "":
        parts.pop()
    if not parts or not all(SEGMENT.match(part) for part in parts):
        return False
    if parts[0] == "static" and len(parts) > 1:
        return True
    for base in (f"history/{app_id}", f"api/v1/applications/{app_id}"):
        if rest == base or rest.startswith(base + "/"):
            return True
    return False


@login_required
def job_spark_ui(request, pk, rest=""):
    job = visible_to(Job.objects.all(), request.user).filter(pk=pk).first()
    if job is None:
        raise Http404("No such job.")
    if not job.spark_app_id:
        raise Http404("This job has no Spark application (yet).")
    prefix = reverse("web:job_spark", args=[job.pk])
    if not rest:
        return HttpResponseRedirect(f"{prefix}history/{job.spark_app_id}/jobs/")
    if not allowed(rest, job.spark_app_id):
        raise Http404("Not a page of this job's application.")
    url = f"{settings.DMARKET_HISTORY_URL.rstrip('/')}/{quote(rest, safe='/')}"
    query = request.META.get("QUERY_STRING", "")
    try:
        upstream = requests.get(url + (f"?{query}" if query else ""), stream=True,
                                timeout=TIMEOUT, allow_redirects=False,
                                headers={"X-Forwarded-Context": prefix.rstrip("/")})
    except requests.RequestException as e:
        log.warning("job %s: the history server does not answer: %s", job.pk, e)
        return HttpResponse("The Spark history server does not answer; try again shortly.",
                            status=503, content_type="text/plain; charset=utf-8")
    if upstream.is_redirect:
        upstream.close()
        return HttpResponseRedirect(redirect_target(upstream.headers.get("Location", ""),
                                                    prefix, job.spark_app_id))
    response = StreamingHttpResponse(upstream.iter_content(64 * 1024),
                                     status=upstream.status_code)
    for name in PASSED_HEADERS:
        if name in upstream.headers:
            response[name] = upstream.headers[name]
    response["Content-Security-Policy"] = SANDBOX
    response["X-Content-Type-Options"] = "nosniff"
    return response


def redirect_target(location, prefix, app_id):
    """The history server's redirect, kept inside the job's prefix (its own host dropped)."""
    path = urlsplit(location).path or "/"
    if path.startswith(prefix):
        path = path[len(prefix):]
    rest = path.lstrip("/")
    if not allowed(rest, app_id):
        rest = f"history/{app_id}/jobs/"
    return prefix + rest
