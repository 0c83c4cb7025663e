"""The dashboard's pages through Django's test client: who may see what, the sign-in rules
(the API's own limits), each page and its live parts, and the API under the session."""

import re
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.test import Client
from django.utils import timezone

from dmarket.accounts.models import ApiToken
from dmarket.conftest import client_for
from dmarket.credits.models import LedgerEntry
from dmarket.credits.services import run_bill_usage
from dmarket.files.tests.util import uploaded
from dmarket.jobs.models import Job
from dmarket.machines.models import Machine, MachineStateChange
from dmarket.inference.tests.factories import make_inference_job
from dmarket.jobs.tests.factories import make_job

pytestmark = pytest.mark.django_db

PASSWORD = "a long test password 1"
PAGES = ["/", "/jobs/", "/jobs/new/", "/machines/", "/credits/", "/files/", "/inference/",
         "/cluster/", "/tokens/"]


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def job_of(user, **fields):
    values = {"name": "train", "entry_file": "dmarket://apps/train.py@1", "cores": 2,
              "max_credits": Decimal("5")}
    values.update(fields)
    return make_job(user=user, **values)


def text(response):
    return response.content.decode()


@pytest.mark.parametrize("path", PAGES + ["/jobs/1/", "/machines/1/", "/inference/1/"])
def test_a_page_sends_the_signed_out_to_sign_in(path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/signin/?next={path}"


def test_sign_up_signs_in_with_the_grant_and_the_apis_rules(settings):
    client = Client()
    response = client.post("/signup/", {"username": "newbie", "email": "",
                                        "password": "a long new password 7"})
    assert response.status_code == 302 and response["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert "Welcome, newbie: you have 100 credits to spend." in text(page)
    assert re.search(r'data-credits="available">100\.000000<', text(page))
    # The same validation as POST /api/auth/register/.
    taken = Client().post("/signup/", {"username": "NEWBIE", "password": "a long new password 7"})
    assert taken.status_code == 400
    assert "This username is taken." in text(taken)
    weak = Client().post("/signup/", {"username": "other", "password": "short"})
    assert weak.status_code == 400
    assert "This password is too short." in text(weak)


def test_sign_up_is_throttled_like_the_api(settings):
    settings.DMARKET_REGISTER_RATE = "1/hour"
    assert Client().post("/signup/", {"username": "one", "password": "a long new password 7"}
                         ).status_code == 302
    refused = Client().post("/signup/", {"username": "two", "password": "a long new password 7"})
    assert refused.status_code == 429
    assert "Too many sign-ups: try again in" in text(refused)


def test_sign_in_and_out(alice):
    client = Client()
    wrong = client.post("/signin/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 401
    assert "Wrong username or password." in text(wrong)
    response = client.post("/signin/", {"username": "alice", "password": PASSWORD,
                                        "next": "/jobs/"})
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    assert client.get("/jobs/").status_code == 200
    assert client.get("/signout/").status_code == 405  # a link cannot sign anyone out
    assert client.post("/signout/")["Location"] == "/signin/"
    assert client.get("/jobs/").status_code == 302


def test_sign_in_goes_nowhere_outside_the_site(alice):
    response = Client().post("/signin/", {"username": "alice", "password": PASSWORD,
                                          "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_sign_in_is_throttled_per_username_like_the_api(settings, alice):
    settings.DMARKET_LOGIN_USERNAME_RATE = "2/hour"
    for _ in range(2):
        assert Client().post("/signin/", {"username": "alice", "password": "x"}
                             ).status_code == 401
    refused = Client().post("/signin/", {"username": "alice", "password": PASSWORD})
    assert refused.status_code == 429
    assert "Too many attempts" in text(refused)


def test_every_page_renders_with_data_and_loads_nothing_from_elsewhere(alice, make_user):
    owner = make_user("carol")
    machine = Machine.objects.create(user=alice, name="box", cores=4, memory_mb=4096,
                                     address="127.0.0.9", state=Machine.ONLINE)
    MachineStateChange.objects.create(machine=machine, state=Machine.ONLINE, reason="joined")
    Machine.objects.create(user=owner, name="carols", cores=2, memory_mb=2048,
                           address="127.0.0.8", state=Machine.ONLINE)
    job = job_of(alice, status=Job.RUNNING, started_at=timezone.now())
    uploaded(alice, "data/train.csv", b"a,b\n1,2\n")
    ijob = make_inference_job(user=alice, name="infer",
                              model="dmarket://m.keras", data="dmarket://d.csv",
                              batch_size=8)
    client = signed_in(alice)
    for path in PAGES + [f"/jobs/{job.pk}/", f"/machines/{machine.pk}/",
                         f"/inference/{ijob.pk}/", "/api/docs/"]:
        response = client.get(path)
        assert response.status_code == 200, path
        html = text(response)
        # Every script, style and image from this server (no CDN).
        assert re.findall(r'(?:src|href)="(?:https?:)?//', html) == [], path
    assert "dmarket://data/train.csv@1" in text(client.get("/files/"))
    assert "#" + str(job.pk) in text(client.get("/"))
    assert "carols" in text(client.get("/cluster/"))


def test_swagger_ui_is_served_from_static_files(client):
    html = text(client.get("/api/docs/"))
    scripts = re.findall(r'src="([^"]+)"', html)
    assert any(s.endswith("swagger-ui-bundle.js") for s in scripts), scripts
    for src in scripts:
        assert src.startswith("/static/"), src
    assert '"/api/schema/"' in html


def test_a_live_part_is_the_fragment_alone(alice):
    job = job_of(alice)
    client = signed_in(alice)
    part = client.get("/jobs/?part=jobs")
    assert part.status_code == 200
    assert "<html" not in text(part) and f'data-job="{job.pk}"' in text(part)
    assert client.get("/jobs/?part=nothing").status_code == 404
    summary = text(client.get(f"/jobs/{job.pk}/?part=job"))
    assert "QUEUED" in summary and "data-final" not in summary
    job.status, job.settled_at = Job.SUCCEEDED, timezone.now()
    job.save(update_fields=["status", "settled_at"])
    assert "data-final" in text(client.get(f"/jobs/{job.pk}/?part=job"))


def test_jobs_filter_by_status_and_refuse_an_unknown_one(alice):
    job_of(alice, name="waiting")
    job_of(alice, name="done", status=Job.SUCCEEDED)
    client = signed_in(alice)
    html = text(client.get("/jobs/?status=succeeded&part=jobs"))
    assert "done" in html and "waiting" not in html
    bad = client.get("/jobs/?status=nope")
    assert bad.status_code == 400
    assert text(bad) == ("Unknown status 'nope': one of QUEUED, STARTING, RUNNING, SUCCEEDED, "
                         "FAILED, CANCELLED, LOST.")


def test_another_users_job_machine_and_inference_are_a_404_page(alice, bob):
    job = job_of(bob)
    machine = Machine.objects.create(user=bob, cores=1, memory_mb=1024, address="127.0.0.7")
    ijob = make_inference_job(user=bob, model="dmarket://m",
                              data="dmarket://d", batch_size=1)
    client = signed_in(alice)
    for path in (f"/jobs/{job.pk}/", f"/jobs/{job.pk}/?part=job", f"/machines/{machine.pk}/",
                 f"/inference/{ijob.pk}/"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "<h1>Not found</h1>" in text(response)
        assert bob.username not in text(response)


def test_the_job_page_lists_its_results_to_download(alice):
    job = job_of(alice, status=Job.SUCCEEDED, finished_at=timezone.now())
    job.output_dir.mkdir(parents=True)
    (job.output_dir / "model.txt").write_text("weights")
    html = text(signed_in(alice).get(f"/jobs/{job.pk}/"))
    assert f'href="/api/jobs/{job.pk}/results/model.txt"' in html
    download = signed_in(alice).get(f"/api/jobs/{job.pk}/results/model.txt")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"weights"


def test_credits_page_filters_the_ledger_and_charts_it(alice):
    client = signed_in(alice)
    html = text(client.get("/credits/?kind=grant"))
    assert "signup grant" in html.lower() or "grant" in html
    series = re.search(r'<script id="credits-series" type="application/json">(.*?)</script>',
                       html).group(1)
    assert '"balance": "100.000000"' in series
    assert text(client.get("/credits/?kind=charge&part=credits")).count("<tr>") == 2  # head, none
    assert client.get("/credits/?kind=bogus").status_code == 400


def test_the_ledger_pages_by_id_without_counting(alice, staff, django_assert_max_num_queries):
    from dmarket.credits.services import credits_adjust
    for i in range(60):
        credits_adjust(alice, Decimal("0.5"), f"gift {i}", staff, key=f"adjustment:{i}")
    ids = list(LedgerEntry.objects.filter(user=alice, kind="adjustment").order_by("-id")
               .values_list("id", flat=True))
    client = signed_in(alice)
    first = text(client.get("/credits/?kind=adjustment&part=credits"))
    assert f'href="?kind=adjustment&amp;before={ids[49]}">Older</a>' in first
    assert ">Newest<" not in first
    second = text(client.get(f"/credits/?kind=adjustment&before={ids[49]}&part=credits"))
    assert [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", second)] == ids[50:]
    assert 'href="?kind=adjustment&amp;">Newest</a>' in second and ">Older<" not in second
    with django_assert_max_num_queries(8) as queries:
        client.get(f"/credits/?before={ids[49]}&part=credits")
    assert not any("COUNT(" in q["sql"] for q in queries.captured_queries)
    for bad in ("x", "-1", "1" * 19, "²"):
        response = client.get("/credits/", {"before": bad})
        assert response.status_code == 400, bad
        assert text(response).startswith("?before= is an entry's id")


def test_tokens_are_issued_once_and_revoked_only_by_their_owner(alice, bob):
    client = signed_in(alice)
    response = client.post("/tokens/", {"action": "issue", "name": "laptop"})
    key = re.search(r'<code id="new-token">([0-9a-f]{40})</code>', text(response)).group(1)
    assert client_for(type("U", (), {"token": key})()).get("/api/auth/me/").json()[
        "username"] == "alice"
    token = ApiToken.objects.get(user=alice, name="laptop")
    assert key not in text(client.get("/tokens/"))  # shown once
    bobs = ApiToken.objects.filter(user=bob).first()
    assert client.post("/tokens/", {"action": "revoke", "token": bobs.pk}).status_code == 404
    assert ApiToken.objects.filter(pk=bobs.pk).exists()
    assert client.post("/tokens/", {"action": "revoke", "token": "x"}).status_code == 400
    response = client.post("/tokens/", {"action": "revoke", "token": token.pk})
    assert response.status_code == 302
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_the_api_takes_the_session_only_with_its_csrf_token(alice, entry_file):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    body = {"name": "web", "entry_file": entry_file, "cores": 1}
    refused = client.post("/api/jobs/", body, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "CSRF Failed: CSRF cookie not set."}
    client.get("/jobs/new/")  # sets the CSRF cookie, as a page does
    token = client.cookies["csrftoken"].value
    response = client.post("/api/jobs/", body, content_type="application/json",
                           HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.json()
    assert Job.objects.get(pk=response.json()["id"]).user == alice
    # Without a session or a token the API still answers 401 with its challenge.
    anonymous = Client().get("/api/jobs/")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"


def test_a_machine_page_charts_its_states(alice):
    machine = Machine.objects.create(user=alice, cores=1, memory_mb=1024, address="127.0.0.6")
    html = text(signed_in(alice).get(f"/machines/{machine.pk}/"))
    assert f'data-machine-chart="/api/machines/{machine.pk}/history/"' in html
    assert '["ONLINE", "OFFLINE", "PAUSED", "REMOVED"]' in html


def test_the_submit_form_shows_the_price_before_submitting(alice, settings):
    html = text(signed_in(alice).get("/jobs/new/"))
    assert "credits per core-hour" in html
    assert 'data-jobs="/api/jobs/"' in html and 'data-files="/api/files/"' in html
    assert LedgerEntry.objects.filter(user=alice).count() == 1  # only looking costs nothing


def test_a_pages_form_needs_its_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/tokens/", {"action": "issue"}).status_code == 403
    assert client.post("/signout/").status_code == 403
    assert ApiToken.objects.filter(user=alice).count() == 1  # make_user's own


def test_what_a_user_wrote_is_shown_as_text(alice):
    job = job_of(alice, name='<script>alert("x")</script>', status=Job.FAILED,
                 status_reason="<img src=x onerror=alert(1)>")
    client = signed_in(alice)
    for path in (f"/jobs/{job.pk}/", "/jobs/"):
        html = text(client.get(path))
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html, path


@pytest.mark.parametrize("path, body", [
    ("/signin/", {"username": "alice\x00", "password": "x"}),
    ("/signup/", {"username": "a\x00b", "password": "a long new password 7"}),
    ("/tokens/", {"action": "issue", "name": "a\x00b"}),
])
def test_a_nul_in_a_forms_field_is_a_400(alice, path, body):
    response = signed_in(alice).post(path, body)
    assert response.status_code == 400
    assert response.json() == {"detail": "A field of the form holds a NUL character, which no "
                                         "field may hold."}


@pytest.mark.parametrize("token", ["\u00b2", "1" * 5000, "-1", " 1"])
def test_an_odd_token_id_is_a_400(alice, token):
    response = signed_in(alice).post("/tokens/", {"action": "revoke", "token": token})
    assert response.status_code == 400
    assert text(response) == "Name the token to revoke by its id."


def test_a_new_key_is_never_cached(alice):
    response = signed_in(alice).post("/tokens/", {"action": "issue"})
    assert "no-store" in response["Cache-Control"]


def test_the_file_filter_is_bounded_and_kept_in_the_pager(alice):
    for i in range(55):
        uploaded(alice, f"ab/{i:02}.txt", b"x")
    client = signed_in(alice)
    html = text(client.get("/files/?pattern=ab/*"))
    assert 'href="?pattern=ab%2F%2A&amp;page=2"' in html
    assert client.get("/files/?pattern=" + "*" * 255).status_code == 200  # one star
    too_long = client.get("/files/?pattern=" + "a" * 256)
    assert too_long.status_code == 400
    assert text(too_long) == "A name filter has at most 255 characters."
    api = client_for(alice).get("/api/files/?pattern=" + "a" * 256)
    assert api.status_code == 400
    assert api.json()["errors"] == {"pattern": ["At most 255 characters."]}


def test_an_earning_names_the_renters_job_without_a_link(alice, bob):
    machine = Machine.objects.create(user=alice, cores=1, memory_mb=1024, address="127.0.0.5")
    job = job_of(bob, status=Job.RUNNING, price_per_core_hour=Decimal("1"))
    run_bill_usage(job.run, [SimpleNamespace(key="e1", machine=machine, core_ms=3_600_000,
                                         gpu_ms=0)])
    assert LedgerEntry.objects.filter(user=alice, kind=LedgerEntry.EARNING).count() == 1
    html = text(signed_in(alice).get("/credits/?part=credits"))
    assert f"#{job.pk}" in html and f'href="/jobs/{job.pk}/"' not in html


def test_a_server_error_on_a_page_is_a_page(alice, monkeypatch):
    from dmarket.web import views

    def broken(user):
        raise RuntimeError("boom")
    monkeypatch.setattr(views, "credits_of", broken)
    client = signed_in(alice)
    client.raise_request_exception = False
    response = client.get("/", HTTP_X_REQUEST_ID="req-42")
    assert response.status_code == 500
    assert "Something went wrong on our side" in text(response)
    assert "req-42" in text(response)
