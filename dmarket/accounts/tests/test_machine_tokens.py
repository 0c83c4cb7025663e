"""Machine tokens (a machine agent's, issued with the machine's registration): good for its
machine's heartbeat and details only; 403 with one body on every other route of the API."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from dmarket.accounts.authentication import ApiTokenAuthentication
from dmarket.accounts.models import ApiToken
from dmarket.accounts.permissions import MACHINE_TOKEN_REFUSED
from dmarket.conftest import client_for, machine_client
from dmarket.credits.models import LedgerEntry
from dmarket.files.models import StoredFile
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine

pytestmark = pytest.mark.django_db

REFUSED = {"detail": MACHINE_TOKEN_REFUSED}

# Every route and method of the API that takes a token, as urls.py names them, but the
# machine token's own two: GET machines/<pk>/ and POST machines/<pk>/heartbeat/.
ROUTES = [
    ("get", "auth/me/"),
    ("get", "machines/"),
    ("post", "machines/"),
    ("delete", "machines/<int:pk>/"),
    ("get", "machines/<int:pk>/history/"),
    ("get", "jobs/"),
    ("post", "jobs/"),
    ("get", "jobs/<int:pk>/"),
    ("post", "jobs/<int:pk>/cancel/"),
    ("get", "jobs/<int:pk>/log/"),
    ("get", "jobs/<int:pk>/results/"),
    ("get", "jobs/<int:pk>/results/<path:path>"),
    ("get", "jobs/<int:pk>/executors/"),
    ("get", "jobs/<int:pk>/executors/<str:executor_id>/log/"),
    ("get", "metrics/"),
    ("post", "envs/"),
    ("get", "envs/<str:key>/"),
    ("post", "envs/<str:key>/save/"),
    ("get", "files/"),
    ("get", "files/usage/"),
    ("get", "files/<path:name>"),
    ("put", "files/<path:name>"),
    ("patch", "files/<path:name>"),
    ("delete", "files/<path:name>"),
    ("get", "file-versions/<path:name>"),
    ("get", "file-replicas/<path:name>"),
    ("get", "inference/"),
    ("post", "inference/"),
    ("get", "inference/rates/"),
    ("get", "inference/<int:pk>/"),
    ("patch", "inference/<int:pk>/"),
    ("post", "inference/<int:pk>/cancel/"),
    ("get", "inference/<int:pk>/stats/"),
    ("get", "inference/<int:pk>/results/"),
    ("get", "inference/<int:pk>/results/download/"),
    ("get", "cluster/status/"),
    ("get", "credits/"),
    ("get", "credits/transactions/"),
    ("get", "prices/"),
]
MACHINE_ROUTES = [("get", "machines/<int:pk>/"), ("post", "machines/<int:pk>/heartbeat/")]
METHODS = ("get", "post", "put", "patch", "delete")


def concrete(route, machine):
    """The route with the machine's own id for every number (the machine routes' `pk`)."""
    path = re.sub(r"<int:\w+>", str(machine.pk), route)
    return "/api/" + re.sub(r"<(str|path):\w+>", "x", path)


def routes_taking_a_token():
    """(method, route) of every view of the API that authenticates, from urls.py."""
    (api,) = [p for p in get_resolver().url_patterns
              if isinstance(p, URLResolver) and str(p.pattern) == "api/"]
    found = set()
    for pattern in api.url_patterns:
        assert isinstance(pattern, URLPattern)
        view = pattern.callback.view_class
        authenticators = pattern.callback.view_initkwargs.get(
            "authentication_classes", view.authentication_classes)
        if ApiTokenAuthentication not in authenticators:
            # register, login, the schema, job inputs (a token in the URL), the Swagger UI
            # page (the session at most)
            continue
        found |= {(m, str(pattern.pattern)) for m in METHODS if hasattr(view, m)}
    return found


@pytest.fixture
def machine(alice):
    return Machine.objects.create(user=alice, cores=4, memory_mb=8192, address="192.0.2.10")


def test_the_routes_here_are_every_route_but_the_machine_tokens_own():
    assert routes_taking_a_token() == set(ROUTES) | set(MACHINE_ROUTES)
    assert len(ROUTES) == len(set(ROUTES))


@pytest.mark.parametrize("method, route", ROUTES)
def test_every_other_route_is_403(machine, method, route):
    response = getattr(machine_client(machine), method)(concrete(route, machine), {},
                                                        format="json")

    assert response.status_code == 403
    assert response.json() == REFUSED


def test_submitting_a_job_is_403_and_submits_nothing(alice, machine, entry_file):
    body = {"name": "job", "entry_file": entry_file, "max_credits": "1"}
    ledger = LedgerEntry.objects.count()

    response = machine_client(machine).post("/api/jobs/", body, format="json")

    assert response.status_code == 403
    assert response.json() == REFUSED
    assert (Job.objects.count(), LedgerEntry.objects.count()) == (0, ledger)
    # The same body with the owner's token is a job: only the token was refused.
    assert client_for(alice).post("/api/jobs/", body, format="json").status_code == 201


def test_listing_files_is_403(machine):
    response = machine_client(machine).get("/api/files/")

    assert response.status_code == 403
    assert response.json() == REFUSED


def test_uploading_a_file_is_403_and_stores_nothing(machine):
    response = machine_client(machine).put("/api/files/a.txt", b"hello",
                                           content_type="application/octet-stream")

    assert response.status_code == 403
    assert response.json() == REFUSED
    assert StoredFile.objects.count() == 0


@pytest.mark.parametrize("path", ["/api/credits/", "/api/credits/transactions/"])
def test_credits_are_403(machine, path):
    ledger = LedgerEntry.objects.count()

    response = machine_client(machine).get(path)

    assert response.status_code == 403
    assert response.json() == REFUSED
    assert LedgerEntry.objects.count() == ledger


def test_a_revoked_machine_token_is_401_everywhere(alice, machine):
    client = machine_client(machine)
    ApiToken.objects.filter(machine=machine).delete()

    for method, route in ROUTES + MACHINE_ROUTES:
        response = getattr(client, method)(concrete(route, machine), {}, format="json")
        assert (response.status_code, response.json()) == (401, {"detail": "Invalid token."})


def test_routes_without_a_token_ignore_it(machine):
    # Login takes a password, not a token: a machine token there is no login.
    response = machine_client(machine).post("/api/auth/login/", {"username": "alice"},
                                            format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "password: This field is required.",
                               "errors": {"password": ["This field is required."]}}
