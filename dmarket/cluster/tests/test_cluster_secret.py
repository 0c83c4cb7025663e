"""manage.py cluster_secret and dmarket.cluster.security: the cluster's secret, made once and
kept by the server, rotated on demand, handed to drivers in a file only they read."""

import os
import re
import shlex
import stat
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from dmarket.cluster import security

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("cluster_secret", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_secret_is_made_once_and_kept(settings):
    settings.DMARKET_SPARK_SECRET = ""
    first = security.cluster_secret()

    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert security.cluster_secret() == first


def test_shell_prints_what_a_daemon_needs_for_eval(settings):
    settings.DMARKET_SPARK_SECRET = ""
    out, _ = run("--shell")

    values = dict(line.split("=", 1) for line in out.splitlines())
    assert shlex.split(values["_SPARK_AUTH_SECRET"]) == [security.cluster_secret()]
    assert shlex.split(values["DMARKET_SPARK_SECURITY_OPTS"]) == [
        "-Dspark.authenticate=true -Dspark.network.crypto.enabled=true"]


def test_rotate_makes_a_new_secret(settings):
    settings.DMARKET_SPARK_SECRET = ""
    before = security.cluster_secret()

    _, err = run("--rotate")

    assert security.cluster_secret() != before
    assert "restart the master" in err


def test_an_operators_secret_is_used_and_not_rotated_here(settings):
    settings.DMARKET_SPARK_SECRET = "from-the-vault"

    assert security.cluster_secret() == "from-the-vault"
    with pytest.raises(CommandError, match="DMARKET_SPARK_SECRET is set"):
        run("--rotate")


def test_without_authentication_or_on_a_local_master_there_is_no_secret(settings):
    settings.DMARKET_SPARK_AUTHENTICATE = False
    assert (security.cluster_secret(), security.security_conf()) == ("", {})
    with pytest.raises(CommandError, match="no secret to rotate"):
        run("--rotate")

    settings.DMARKET_SPARK_AUTHENTICATE = True
    settings.DMARKET_SPARK_MASTER_URL = "local[2]"
    assert security.cluster_secret() == ""


def test_encryption_can_be_turned_off(settings):
    settings.DMARKET_SPARK_RPC_ENCRYPTION = False
    settings.DMARKET_SPARK_IO_ENCRYPTION = False

    assert security.app_security_conf() == {"spark.authenticate": "true"}


def test_the_drivers_properties_file_is_its_alone(settings, tmp_path):
    settings.DMARKET_SPARK_SECRET = "s3cret"
    path = security.write_properties(tmp_path / "spark.conf")

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().splitlines() == [
        "spark.authenticate true", "spark.network.crypto.enabled true",
        "spark.io.encryption.enabled true", "spark.authenticate.secret s3cret"]
