"""The dashboard: server-rendered pages over the same querysets, serializers and services as
the API. A page's live parts are re-rendered by the server (?part=NAME, fetched by
static/web/dmarket.js every few seconds); what a page changes (submit, cancel, upload,
publish, batch size) it changes through the API itself, with the session and its CSRF token,
so every rule is the API's."""

import re
from decimal import Decimal
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from rest_framework.parsers import FormParser
from rest_framework.request import Request

from dmarket.accounts.models import ApiToken
from dmarket.accounts.serializers import RegisterSerializer
from dmarket.accounts.services import UsernameTaken, user_register
from dmarket.accounts.throttles import LoginThrottle, LoginUsernameThrottle, RegisterThrottle
from dmarket.common.api import visible_to
from dmarket.credits.models import Account, LedgerEntry
from dmarket.jobs.pricing import prices_quote
from dmarket.files.serializers import FileVersionSerializer
from dmarket.files.services import MAX_PATTERN, files_latest, job_results
from dmarket.inference.models import InferenceJob
from dmarket.inference.placement import cluster_status
from dmarket.inference.serializers import InferenceJobSerializer, StatsSerializer
from dmarket.inference.services import inference_stats
from dmarket.jobs.models import Job
from dmarket.jobs.serializers import JobSerializer
from dmarket.machines.models import Machine
from dmarket.machines.serializers import MachineSerializer
from dmarket.machines.views import machines_with_earnings

STATUSES = Job.Status.values
KINDS = [k for k, _ in LedgerEntry.KINDS]
PAGE_ROWS = 50
TOKEN_ID = re.compile(r"[0-9]{1,18}")
# The credits chart: the user's last this many ledger rows.
CHART_ROWS = 2000


def page(request, template, context, parts=()):
    """The page, or with ?part=NAME only that live part of it (web/parts/NAME.html)."""
    part = request.GET.get("part")
    if part is not None:
        if part not in parts:
            raise Http404("No such part of this page.")
        return render(request, f"web/parts/{part}.html", context)
    return render(request, template, context)


def choice(request, name, choices):
    """A filter from the query string: one of `choices`, "" for none; anything else is a 400
    naming the value (ValueError caught by the views)."""
    value = request.GET.get(name, "").strip().lower()
    if value and value not in [c.lower() for c in choices]:
        raise ValueError(f"Unknown {name} {value!r}: one of {', '.join(choices)}.")
    return value


def query_of(**filters):
    """A pager link's query string before its page number: the filters, encoded."""
    query = urlencode({k: v for k, v in filters.items() if v})
    return query + "&" if query else ""


def page_of(request, items, per_page=PAGE_ROWS):
    paginator = Paginator(items, per_page)
    return paginator.get_page(request.GET.get("page"))


def keyset_page(request, items, per_page=PAGE_ROWS):
    """A page of `items` (newest first by id) of ids below ?before=: no COUNT(*) and no
    OFFSET, for lists that grow without bound (the ledger). ValueError for a bad ?before=."""
    before = request.GET.get("before", "")
    if before and not (before.isascii() and before.isdigit() and len(before) <= 18):
        raise ValueError(f"?before= is an entry's id, not {before[:40]!r}.")
    if before:
        items = items.filter(id__lt=int(before))
    rows = list(items.order_by("-id")[:per_page + 1])
    return {"rows": rows[:per_page], "before": before,
            "older": rows[per_page - 1].id if len(rows) > per_page else None}


def throttled(request, throttles):
    """Seconds to wait when one of the API's sign-in throttles refuses this form post (the
    same limits as /api/auth/...), else None."""
    drf = Request(request, parsers=[FormParser()])
    drf._full_data = request.POST  # already parsed by Django's CSRF middleware
    waits = [t.wait() for t in (cls() for cls in throttles) if not t.allow_request(drf, None)]
    return max((w or 1 for w in waits), default=None)


def next_url(request):
    url = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(url, {request.get_host()}, request.is_secure()):
        return url
    return reverse("web:overview")


def signin(request):
    if request.user.is_authenticated and request.method == "GET":
        return redirect(next_url(request))
    error, status = "", 200
    if request.method == "POST":
        wait = throttled(request, [LoginThrottle, LoginUsernameThrottle])
        if wait is not None:
            error, status = f"Too many attempts: try again in {int(wait) + 1} s.", 429
        else:
            user = authenticate(request, username=request.POST.get("username", ""),
                                password=request.POST.get("password", ""))
            if user is not None:
                login(request, user)
                return redirect(next_url(request))
            error, status = "Wrong username or password.", 401
    return render(request, "web/signin.html", {
        "error": error, "next": request.POST.get("next") or request.GET.get("next", ""),
        "username": request.POST.get("username", "")}, status=status)


def signup(request):
    errors, status = {}, 200
    fields = {"username": "", "email": ""}
    if request.method == "POST":
        data = {name: request.POST.get(name, "") for name in ("username", "email", "password")}
        fields.update(username=data["username"], email=data["email"])
        wait = throttled(request, [RegisterThrottle])
        serializer = RegisterSerializer(data=data)
        if wait is not None:
            errors, status = {"": [f"Too many sign-ups: try again in {int(wait) + 1} s."]}, 429
        elif not serializer.is_valid():
            errors, status = serializer.errors, 400
        else:
            valid = serializer.validated_data
            try:
                user, _ = user_register(valid["username"], valid["email"], valid["password"])
            except UsernameTaken:
                errors, status = {"username": ["This username is taken."]}, 400
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome, {user.username}: you have "
                                          f"{settings.DMARKET_SIGNUP_GRANT} credits to spend.")
                return redirect("web:overview")
    return render(request, "web/signup.html", {"errors": errors, **fields}, status=status)


@require_POST
def signout(request):
    logout(request)
    return redirect("web:signin")


def credits_of(user):
    account, _ = Account.objects.get_or_create(user=user)
    return {name: getattr(account, name)
            for name in ("balance", "held", "available", "earned", "spent")}


@login_required
def overview(request):
    user = request.user
    running = (Job.objects.filter(user=user, status__in=Job.UNFINISHED).select_related("user")
               .order_by("-id")[:20])
    machines = machines_with_earnings().filter(user=user).exclude(state=Machine.REMOVED)
    return page(request, "web/overview.html", {
        "credits": credits_of(user),
        "jobs": JobSerializer(running, many=True).data,
        "machines": MachineSerializer(machines, many=True).data,
    }, parts=["overview"])


@login_required
def jobs(request):
    try:
        status = choice(request, "status", STATUSES)
    except ValueError as e:
        return HttpResponseBadRequest(str(e))
    qs = Job.objects.filter(user=request.user).select_related("user").order_by("-id")
    if status:
        qs = qs.filter(status=status.upper())
    rows = page_of(request, qs)
    return page(request, "web/jobs.html", {
        "page": rows, "jobs": JobSerializer(rows.object_list, many=True).data,
        "statuses": STATUSES, "status": status.upper(), "query": query_of(status=status)},
        parts=["jobs"])


@login_required
def job_new(request):
    quote = prices_quote()
    return render(request, "web/job_new.html", {
        "quote": quote, "credits": credits_of(request.user),
        "limits": {"cores": settings.DMARKET_MAX_JOB_CORES,
                   "memory": settings.DMARKET_MAX_EXECUTOR_MEMORY_MB},
        "quote_json": {"effective": {k: str(v) for k, v in quote["effective"].items()},
                       "premium_rate": str(quote["premium_rate"])}})


def job_of(request, pk):
    # Another user's job is a 404, as in the API: its existence is not told.
    return get_object_or_404(visible_to(Job.objects.select_related("user", "run"), request.user),
                             pk=pk)


@login_required
def job_detail(request, pk):
    job = job_of(request, pk)
    return page(request, "web/job.html", {
        "job": JobSerializer(job).data, "finished": job.is_finished,
        "results": job_results(job) if job.is_finished else [],
    }, parts=["job"])


@login_required
def machines(request):
    rows = machines_with_earnings().filter(user=request.user).exclude(state=Machine.REMOVED)
    return page(request, "web/machines.html", {
        "machines": MachineSerializer(rows, many=True).data}, parts=["machines"])


@login_required
def machine_detail(request, pk):
    machine = get_object_or_404(visible_to(machines_with_earnings(), request.user), pk=pk)
    history = machine.history.order_by("-id")[:PAGE_ROWS]
    return page(request, "web/machine.html", {
        "machine": MachineSerializer(machine).data, "history": history,
        "states": Machine.State.values}, parts=["machine"])


def ledger_series(user):
    """The credits chart: after each of the user's last ledger rows, the balance, and the
    running totals spent (charges) and earned since the first row shown; then the same now
    (the lines run up to the present)."""
    rows = list(LedgerEntry.objects.filter(user=user).order_by("-id")
                .values("created_at", "kind", "amount", "balance_after")[:CHART_ROWS])
    spent = earned = Decimal(0)
    points = []
    for row in reversed(rows):
        if row["kind"] == LedgerEntry.CHARGE:
            spent -= row["amount"]
        elif row["kind"] == LedgerEntry.EARNING:
            earned += row["amount"]
        points.append({"t": row["created_at"].timestamp() * 1000,
                       "balance": str(row["balance_after"]), "spent": str(spent),
                       "earned": str(earned)})
    if points:
        points.append({**points[-1], "t": timezone.now().timestamp() * 1000})
    return points


@login_required
def credits(request):
    try:
        kind = choice(request, "kind", KINDS)
    except ValueError as e:
        return HttpResponseBadRequest(str(e))
    qs = LedgerEntry.objects.filter(user=request.user).select_related("run__job",
                                                                      "run__inference")
    if kind:
        qs = qs.filter(kind=kind)
    try:
        rows = keyset_page(request, qs)
    except ValueError as e:
        return HttpResponseBadRequest(str(e))
    return page(request, "web/credits.html", {
        "credits": credits_of(request.user), "page": rows, "kinds": KINDS, "kind": kind,
        "query": query_of(kind=kind), "series": ledger_series(request.user)},
        parts=["credits"])


@login_required
def files(request):
    pattern = request.GET.get("pattern", "").strip()
    if len(pattern) > MAX_PATTERN:
        return HttpResponseBadRequest(f"A name filter has at most {MAX_PATTERN} characters.")
    found = files_latest(request.user, None, pattern or None)
    rows = page_of(request, found)
    return page(request, "web/files.html", {
        "page": rows, "pattern": pattern, "query": query_of(pattern=pattern),
        "files": FileVersionSerializer(rows.object_list, many=True,
                                       context={"user": request.user}).data},
        parts=["files"])


@login_required
def inference(request):
    jobs = (InferenceJob.objects.filter(user=request.user).select_related("user", "run")
            .order_by("-id"))
    rows = page_of(request, jobs)
    return page(request, "web/inference.html", {
        "page": rows, "jobs": InferenceJobSerializer(rows.object_list, many=True).data},
        parts=["inference"])


@login_required
def inference_detail(request, pk):
    ijob = get_object_or_404(visible_to(InferenceJob.objects.select_related("user", "run"),
                                        request.user), pk=pk)
    return page(request, "web/inference_job.html", {
        "ijob": InferenceJobSerializer(ijob).data,
        "stats": StatsSerializer(inference_stats(ijob)).data}, parts=["inference_job"])


@login_required
def cluster(request):
    return page(request, "web/cluster.html", {"machines": cluster_status(request.user)},
                parts=["cluster"])


@never_cache  # a new key is on the page once; no cache may keep it
@login_required
def tokens(request):
    """The user's API tokens and machine tokens: issue one (its key shown once) or revoke."""
    key = None
    if request.method == "POST":
        if request.POST.get("action") == "issue":
            name = request.POST.get("name", "").strip()[:100] or "dashboard"
            _, key = ApiToken.issue(request.user, name=name)
        elif request.POST.get("action") == "revoke":
            token_id = request.POST.get("token", "")
            if not TOKEN_ID.fullmatch(token_id):
                return HttpResponseBadRequest("Name the token to revoke by its id.")
            token = get_object_or_404(ApiToken, pk=int(token_id), user=request.user)
            token.delete()
            messages.success(request, f"Token {token.prefix}… revoked.")
            return redirect("web:tokens")
        else:
            return HttpResponseBadRequest("Unknown action: issue or revoke.")
    rows = ApiToken.objects.filter(user=request.user).select_related("machine")
    return render(request, "web/tokens.html", {"tokens": rows, "key": key})
