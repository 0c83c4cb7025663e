"""dmarket/settings.py reads the environment through environs: a bad value stops the process
at start naming the variable; the defaults are what they were; and with the production
variables of doc/configuration.md `manage.py check --deploy` is clean. Each check runs the
real settings module in a subprocess with an environment of the test's own."""

import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[3]

# doc/configuration.md, "Production settings".
PRODUCTION = {
    "SECRET_KEY": "k7Qm2vX9pL4sR8tW1yZ6bN3cF5gH0jD2aE7uI9oP4lK8mN1qS6",
    "ALLOWED_HOSTS": "market.example.org",
    "DMARKET_SECURE_COOKIES": "1",
    "DMARKET_HSTS_SECONDS": "31536000",
    "DMARKET_HSTS_INCLUDE_SUBDOMAINS": "1",
    "DMARKET_HSTS_PRELOAD": "1",
    "DMARKET_SSL_REDIRECT": "1",
    "DMARKET_BEHIND_PROXY": "1",
}


def environment(tmp_path, **extra):
    """This process's environment less every setting, plus the test's."""
    names = {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS"}
    kept = {name: value for name, value in os.environ.items()
            if not name.startswith(("DMARKET_", "DJANGO_")) and name not in names}
    kept.update(DJANGO_SETTINGS_MODULE="dmarket.settings", DMARKET_DATA_DIR=str(tmp_path),
                DATABASE_URL=os.environ.get("DATABASE_URL",
                                            "postgres://postgres@127.0.0.1:5432/dmarket"))
    kept.update(extra)
    return kept


def run(args, env):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def check_deploy(env):
    result = run(["manage.py", "check", "--deploy"], env)
    ids = re.findall(r"^\?: \(([\w.]+)\)", result.stdout + result.stderr, re.M)
    return result, sorted(ids)


def settings_of(env, *names):
    """The named settings as the real settings module makes them from env."""
    code = ("import django; django.setup(); from django.conf import settings; "
            f"print(repr([getattr(settings, n) for n in {list(names)!r}]))")
    result = run(["-c", code], env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("name, value, message", [
    ("DMARKET_BILLING_POLL", "abc", "Not a valid number."),
    ("DMARKET_DRIVER_SLOTS", "2.5", "Not a valid integer."),
    ("DMARKET_SIGNUP_GRANT", "lots", "Not a valid number."),
    ("DEBUG", "ture", "'ture': give 1, true, yes or on"),
    ("DMARKET_PRICES", "core=free", "'core=free': give NAME=PRICE"),
    ("DMARKET_HSTS_SECONDS", "-1", "greater than or equal to 0"),
])
def test_a_bad_value_stops_the_start_naming_the_variable(tmp_path, name, value, message):
    result = run(["manage.py", "check"], environment(tmp_path, **{name: value}))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert f'Environment variable "{name}" invalid' in last
    assert message in last


def test_check_deploy_is_clean_with_the_production_variables(tmp_path):
    result, ids = check_deploy(environment(tmp_path, **PRODUCTION))
    assert result.returncode == 0, result.stderr
    assert ids == []
    assert "System check identified no issues" in result.stdout
    strict = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                 environment(tmp_path, **PRODUCTION))
    assert strict.returncode == 0, strict.stderr


def test_check_deploy_warns_about_the_quick_start_defaults(tmp_path):
    # Plain HTTP on localhost, as the demo runs: warnings, not errors (exit 0).
    result, ids = check_deploy(environment(tmp_path))
    assert result.returncode == 0, result.stderr
    assert ids == ["security.W004", "security.W008", "security.W012", "security.W016"]


def test_check_deploy_names_each_production_variable_left_out(tmp_path):
    partial = {**PRODUCTION, "DMARKET_HSTS_PRELOAD": "0", "DMARKET_SSL_REDIRECT": "0"}
    assert check_deploy(environment(tmp_path, **partial))[1] == [
        "security.W008", "security.W021"]
    weak = {**PRODUCTION, "SECRET_KEY": "short", "DEBUG": "1"}
    assert check_deploy(environment(tmp_path, **weak))[1] == [
        "security.W009", "security.W018"]


def test_defaults_are_unchanged(tmp_path):
    assert settings_of(
        environment(tmp_path), "DEBUG", "ALLOWED_HOSTS", "DMARKET_BILLING_POLL",
        "DMARKET_DRIVER_SLOTS", "DMARKET_SIGNUP_GRANT", "DMARKET_PRICES", "DMARKET_JOB_ENV",
        "DMARKET_PUBLIC_URL", "SESSION_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
        "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER",
    ) == repr([
        False, ["localhost", "127.0.0.1", "[::1]"], 2.0, 2, Decimal("100"),
        {"core": Decimal("1"), "gpu": Decimal("4")},
        {"TF_USE_LEGACY_KERAS": "1"}, "http://127.0.0.1:8000", False, 0, False, None,
    ])
    # The key is generated once into the data directory, and read back after.
    key = (tmp_path / "secret_key").read_text().strip()
    assert len(key) >= 50
    assert settings_of(environment(tmp_path), "SECRET_KEY") == repr([key])


def test_values_read_as_before(tmp_path):
    env = environment(
        tmp_path, DEBUG=" Yes ", ALLOWED_HOSTS=" a.example, ,b.example ",
        DMARKET_PRICES="cpu=2, gpu = 5,fpga=9", DMARKET_JOB_ENV="A=1,B,C=x=y",
        DMARKET_BIND="::1", DMARKET_PORT="8123", DMARKET_SECURE_COOKIES="on",
        DMARKET_SPARK_AUTHENTICATE="off", DMARKET_BEHIND_PROXY="1",
        SECRET_KEY="$HOME-is-not-expanded")
    assert settings_of(
        env, "DEBUG", "ALLOWED_HOSTS", "DMARKET_PRICES", "DMARKET_JOB_ENV",
        "DMARKET_PUBLIC_URL", "CSRF_COOKIE_SECURE", "DMARKET_SPARK_AUTHENTICATE",
        "SECURE_PROXY_SSL_HEADER", "SECRET_KEY",
    ) == repr([
        True, ["a.example", "b.example"],
        {"core": Decimal("2"), "gpu": Decimal("5"),
         "fpga": Decimal("9")},
        {"A": "1", "C": "x=y"}, "http://[::1]:8123", True, False,
        ("HTTP_X_FORWARDED_PROTO", "https"), "$HOME-is-not-expanded",
    ])


@pytest.mark.django_db
def test_the_redirect_to_https_spares_the_health_check_and_trusts_the_proxy(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.DMARKET_SPARK_MASTER_UI = settings.DMARKET_HISTORY_URL = "http://127.0.0.1:9"
    client = Client()
    plain = client.get("/api/prices/")
    assert plain.status_code == 301
    assert plain["Location"] == "https://testserver/api/prices/"
    assert client.get("/api/prices/", HTTP_X_FORWARDED_PROTO="https").status_code != 301
    assert client.get("/api/health/").status_code in (200, 503)
