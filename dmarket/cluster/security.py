"""The closed cluster: the Spark secret and the settings that every JVM of the cluster (master,
workers, drivers, executors) must share, so that nothing without the secret joins or submits,
and so that what passes between strangers' machines is encrypted."""

import os
import secrets

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.db import IntegrityError, transaction
from django.dispatch import receiver

from .models import ClusterSecret

# Spark reads a daemon's secret from this variable (SecurityManager.ENV_AUTH_SECRET), and the
# workers hand it to the executors they start the same way: never on a command line.
SECRET_ENV = "_SPARK_AUTH_SECRET"

# How long a server process answers heartbeats with the secret it last read (the default cache
# is each process's own memory). Thousands of agents beat every few seconds, and reading the row
# was a third of a heartbeat's queries; a rotation reaches the agents this much later (it
# already waits for their next beat). Drivers' properties files always read the row.
AGENT_SECRET_SECONDS = 5.0
AGENT_SECRET_KEY = "dmarket:agent-secret"


def needs_secret():
    """A standalone (or YARN) master needs the shared secret; local[*] makes its own."""
    return (settings.DMARKET_SPARK_AUTHENTICATE
            and not settings.DMARKET_SPARK_MASTER_URL.startswith("local"))


def cluster_secret():
    """The cluster's secret: the operator's (DMARKET_SPARK_SECRET), or the one this server
    made and keeps; "" when authentication is off."""
    if not needs_secret():
        return ""
    if settings.DMARKET_SPARK_SECRET:
        return settings.DMARKET_SPARK_SECRET
    row = ClusterSecret.objects.filter(pk=1).first()
    if row is None:
        try:
            with transaction.atomic():
                row = ClusterSecret.objects.create(pk=1, value=secrets.token_hex(32))
        except IntegrityError:
            # Another process made it first: theirs it is.
            row = ClusterSecret.objects.get(pk=1)
    return row.value


def cluster_secret_rotate():
    """A new secret; the master and every worker must restart with it (the agents do so when
    their heartbeat answer brings it), and running applications end."""
    if settings.DMARKET_SPARK_SECRET:
        raise ValueError("DMARKET_SPARK_SECRET is set: the operator's secret is rotated where "
                         "it is kept, not here")
    value = secrets.token_hex(32)
    updated = ClusterSecret.objects.filter(pk=1).update(value=value)
    if not updated:
        ClusterSecret.objects.create(pk=1, value=value)
    agent_secret_forget()
    return value


def agent_secret():
    """cluster_secret(), as read at most AGENT_SECRET_SECONDS ago by this process."""
    return cache.get_or_set(AGENT_SECRET_KEY, cluster_secret, AGENT_SECRET_SECONDS)


@receiver(setting_changed)
def agent_secret_forget(**kwargs):
    cache.delete(AGENT_SECRET_KEY)


def security_conf():
    """The Spark properties every JVM of the cluster gets, none of them secret."""
    if not needs_secret():
        return {}
    conf = {"spark.authenticate": "true"}
    if settings.DMARKET_SPARK_RPC_ENCRYPTION:
        conf["spark.network.crypto.enabled"] = "true"
    return conf


def app_security_conf():
    """What a driver adds for its own application: local-disk I/O encryption (its key is the
    application's, made by its driver and sent to its executors over the encrypted RPC)."""
    conf = dict(security_conf())
    if settings.DMARKET_SPARK_IO_ENCRYPTION:
        conf["spark.io.encryption.enabled"] = "true"
    return conf


def daemon_java_opts():
    """The -D options of the master and the workers (SPARK_DAEMON_JAVA_OPTS)."""
    return " ".join(f"-D{k}={v}" for k, v in security_conf().items())


def agent_security():
    """What a machine's agent gets for its worker (dmarket.machines.services.agent_security,
    set by this app's ready())."""
    return {"spark_secret": agent_secret(), "spark_conf": security_conf()}


def write_properties(path, owner=None):
    """The driver's properties file, with the secret (spark-submit --properties-file: a driver
    in standalone mode reads the secret only from its configuration, and a command line is
    visible to every process of the host). Created 0600, for `owner` (uid, gid) if given."""
    secret = cluster_secret()
    lines = [f"{k} {v}" for k, v in app_security_conf().items()]
    if secret:
        lines.append(f"spark.authenticate.secret {secret}")
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    if owner is not None:
        os.chown(tmp, *owner)
    os.replace(tmp, path)
    return path
