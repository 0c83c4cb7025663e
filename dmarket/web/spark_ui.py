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

import re
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse

from dmarket.common.api import visible_to
from dmarket.jobs.models import Job

SANDBOX = ("sandbox allow-same-origin allow-forms allow-popups; script-src 'none'; "
           "object-src 'none'; base-uri 'none'; frame-ancestors 'self'")
STATIC = re.compile(r"^static/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
PASSED_HEADERS = ("Content-Type", "Content-Disposition", "Last-Modified", "Cache-Control")
TIMEOUT = 10


def allowed(rest, app_id):
    """Whether the path (after /jobs/ID/spark/) is the job's application's own, or static."""
    if any(part in (".", "..") for part in rest.split("/")) or "\\" in rest:
        return False
    if STATIC.match(rest):
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
    url = f"{settings.DMARKET_HISTORY_URL.rstrip('/')}/{rest}"
    query = request.META.get("QUERY_STRING", "")
    try:
        upstream = requests.get(url + (f"?{query}" if query else ""), stream=True,
                                timeout=TIMEOUT, allow_redirects=False,
                                headers={"X-Forwarded-Context": prefix.rstrip("/")})
    except requests.RequestException as e:
        return HttpResponse(f"The Spark history server does not answer: {e}", status=503,
                            content_type="text/plain; charset=utf-8")
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
