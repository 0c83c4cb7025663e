import math
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from dmarket.accounts.authentication import LAST_USED_RESOLUTION
from dmarket.accounts.models import ApiToken

from .models import Machine, MachineStateChange

# What a machine's agent needs for its worker to join the closed cluster: the cluster's Spark
# secret and conf. The cluster app keeps them (dmarket.cluster.security; the secret is a row of
# its own) and sets the function giving them from its AppConfig.ready(), as machines, below
# cluster, imports nothing of it.
_agent_security = None


def agent_security_set(get):
    global _agent_security
    _agent_security = get


def agent_security():
    """{"spark_secret", "spark_conf"} for an agent (dmarket.cluster.security.agent_security)."""
    if _agent_security is None:
        raise ImproperlyConfigured("dmarket.cluster gave no cluster secret for the agents")
    return _agent_security()


def machine_set_state(machine, state, reason=""):
    """Move the machine to `state` and record it in its history; no row if unchanged.

    REMOVED is final: a caller that read the machine before a concurrent removal (a heartbeat,
    an operator's action) must not bring it back. Removal deletes the machine's tokens (its
    agent's): they authenticate nobody from then on.
    """
    with transaction.atomic():
        locked = Machine.objects.select_for_update().get(pk=machine.pk)
        if locked.state == state or locked.state == Machine.REMOVED:
            machine.state = locked.state
            machine.removed_at = locked.removed_at
            return False
        locked.state = state
        fields = ["state"]
        if state == Machine.REMOVED:
            locked.removed_at = timezone.now()
            fields.append("removed_at")
            locked.tokens.all().delete()
        locked.save(update_fields=fields)
        MachineStateChange.objects.create(machine=locked, state=state, reason=reason)
    machine.state = locked.state
    machine.removed_at = locked.removed_at
    return True


# How long a process keeps its count of the machines that beat (the default cache is each
# process's own memory): a heartbeat must not count the machines on every beat.
BEATING_SECONDS = 30.0
BEATING_KEY = "dmarket:machines-beating"


def machines_beating():
    """The machines whose agents beat: every one not removed."""
    return cache.get_or_set(
        BEATING_KEY, lambda: Machine.objects.exclude(state=Machine.REMOVED).count(),
        BEATING_SECONDS)


def heartbeat_timing(beating=None):
    """(interval, timeout) in seconds that the agents are told: DMARKET_HEARTBEAT_INTERVAL and
    DMARKET_HEARTBEAT_TIMEOUT, both stretched by the same factor when `beating` machines (by
    default machines_beating()) at that interval would beat more often than
    DMARKET_MAX_HEARTBEATS_PER_SECOND, as Nomad stretches its clients' heartbeat TTL: a server
    with more machines than it can hear slows their beats instead of drowning in them."""
    interval = settings.DMARKET_HEARTBEAT_INTERVAL
    timeout = settings.DMARKET_HEARTBEAT_TIMEOUT
    rate = settings.DMARKET_MAX_HEARTBEATS_PER_SECOND
    if rate > 0:
        needed = math.ceil((machines_beating() if beating is None else beating) / rate)
        if needed > interval:
            timeout = math.ceil(timeout * needed / interval)
            interval = needed
    return interval, timeout


def machine_heartbeat(machine, worker_state="", worker_id="", python="", platform="",
                      timeout=None):
    """Record that the machine's agent is alive; ONLINE while shared, PAUSED outside. `timeout`:
    the silence after which it counts as offline, as its agent is told in this beat's answer
    (heartbeat_timing()'s by default).

    One conditional UPDATE when its state stays what it is (almost every beat: thousands of
    machines beat every 10 s); a transaction only when it changes."""
    now = timezone.now()
    if timeout is None:
        timeout = heartbeat_timing()[1]
    fields = {"last_heartbeat": now, "heartbeat_timeout": timeout}
    for name, value in (("worker_state", worker_state), ("worker_id", worker_id),
                        ("python", python), ("platform", platform)):
        if value:
            fields[name] = value
    if not machine.is_shared_at(now):
        state, reason = Machine.PAUSED, "outside its sharing window"
    elif worker_state in ("", "ALIVE"):
        state, reason = Machine.ONLINE, "heartbeat"
    else:
        # The agent lives but its worker does not (yet): nothing can run there.
        state, reason = Machine.OFFLINE, f"its worker is {worker_state}"
    for name, value in fields.items():
        setattr(machine, name, value)
    if Machine.objects.filter(pk=machine.pk, state=state).update(**fields):
        machine.state = state
        return machine
    Machine.objects.filter(pk=machine.pk).update(**fields)
    machine_set_state(machine, state, reason)
    return machine


# What a steady heartbeat may say: each of these, unchanged.
STEADY_FIELDS = ("worker_state", "worker_id", "python", "platform")


def machine_heartbeat_steady(pk, digest, fields, timeout, now=None):
    """A steady heartbeat (of almost every beat of thousands of machines) in one statement,
    which is also its token's check: machine `pk` stays ONLINE, beats and is told `timeout`.
    None (nothing written) when that is not the whole of it: the full view then decides as it
    always has. Otherwise whether the token's last use was recorded with it: once every
    LAST_USED_RESOLUTION, as the full view's authentication records it, by a second statement.
    At 10,000 machines beating every 10 s, that is one beat in six, which went the full way
    (Django's and DRF's stack) before.

    It is one only when all of this holds: the token whose key has `digest` is the machine's
    own and its user's, the user is active (the token then authenticates, as the full view
    would find); the machine is ONLINE, has no sharing window and is not past its
    share_until; and every non-empty value of `fields` (STEADY_FIELDS) is the machine's
    already, a worker_state being "" or ALIVE (an ONLINE machine's)."""
    now = now or timezone.now()
    if fields.get("worker_state", "") not in ("", "ALIVE") or set(fields) - set(STEADY_FIELDS):
        return None
    # In STEADY_FIELDS' order, whatever the body's: one statement text per set of fields sent.
    given = [(name, fields[name]) for name in STEADY_FIELDS if fields.get(name)]
    same = "".join(f' AND m."{name}" = %s' for name, _ in given)
    # On PostgreSQL this statement's own commit does not wait for its WAL to reach the disk
    # (SET LOCAL synchronous_commit, as set_config(..., true) in the statement itself: it ends
    # with the statement's own transaction, so the connection's later writes wait as ever;
    # never in a caller's transaction, whose other writes it would spare too). A crash of the
    # database can lose the last fraction of a second of beats, never anything else; a
    # machine's next beat writes it again. The wait was most of a beat's latency.
    no_wait = (", (SELECT set_config('synchronous_commit', 'off', true)) AS s"
               if connection.vendor == "postgresql" and connection.get_autocommit() else "")
    cursor = getattr(connection, "prepared_cursor", connection.cursor)
    sql = (f'UPDATE "{Machine._meta.db_table}" AS m'
           ' SET "last_heartbeat" = %s, "heartbeat_timeout" = %s'
           f' FROM "{ApiToken._meta.db_table}" AS t, "{get_user_model()._meta.db_table}" AS u'
           f'{no_wait} WHERE m."id" = %s AND t."digest" = %s AND t."machine_id" = m."id"'
           ' AND t."user_id" = m."user_id" AND u."id" = t."user_id" AND u."is_active"'
           ' AND m."state" = %s AND m."sharing_window" = \'\''
           ' AND (m."share_until" IS NULL OR m."share_until" > %s)' + same
           # The token when its use is due to be recorded. A subquery: SQLite's RETURNING
           # may not name the tables of an UPDATE's FROM.
           + f' RETURNING (SELECT k."id" FROM "{ApiToken._meta.db_table}" AS k'
           ' WHERE k."digest" = %s AND (k."last_used_at" IS NULL OR k."last_used_at" <= %s))')
    params = [now, timeout, pk, digest, Machine.ONLINE, now, *[value for _, value in given],
              digest, now - LAST_USED_RESOLUTION]
    # Prepared on PostgreSQL (dmarket.common.postgresql): its planning cost more than its run.
    with cursor() as beat:
        beat.execute(sql, params)
        row = beat.fetchone()
    if row is None:
        return None
    if row[0] is None:
        return False
    # As the authentication's write (a concurrent request's of the same minute is as good),
    # and no more waited for than the beat's.
    with cursor() as use:
        use.execute(f'UPDATE "{ApiToken._meta.db_table}" AS k SET "last_used_at" = %s'
                    + (f" FROM {no_wait[2:]}" if no_wait else "") + ' WHERE k."id" = %s',
                    [now, row[0]])
    return True


def machines_offline(queryset, reason):
    """Mark the machines of `queryset` OFFLINE with a history row each, in three statements
    however many they are (thousands go silent when a network fails). A machine whose row is
    locked (a heartbeat writing it: it is alive) is left for the next pass. Returns how many
    changed."""
    with transaction.atomic():
        ids = list(queryset.exclude(state__in=(Machine.OFFLINE, Machine.REMOVED))
                   .select_for_update(skip_locked=True).values_list("pk", flat=True))
        if not ids:
            return 0
        Machine.objects.filter(pk__in=ids).update(state=Machine.OFFLINE)
        MachineStateChange.objects.bulk_create(
            MachineStateChange(machine_id=pk, state=Machine.OFFLINE, reason=reason)
            for pk in ids)
    return len(ids)


def machines_monitor(workers=None, now=None):
    """The failure detector, one pass: a machine whose heartbeats stopped for the timeout, or
    whose worker the Spark master lost, is OFFLINE. `workers` is the master's worker list
    (None: the master did not answer, so only heartbeats count). Returns how many changed."""
    now = now or timezone.now()
    changed = 0
    heard = Machine.objects.filter(state__in=(Machine.ONLINE, Machine.PAUSED))
    # Each machine is held to the timeout its agent was told (they differ only for a while
    # after the interval stretched or shrank): one pass per timeout told.
    for told in heard.order_by("heartbeat_timeout").values_list(
            "heartbeat_timeout", flat=True).distinct():
        timeout = told or settings.DMARKET_HEARTBEAT_TIMEOUT
        silent = heard.filter(heartbeat_timeout=told).filter(
            Q(last_heartbeat__isnull=True)
            | Q(last_heartbeat__lt=now - timedelta(seconds=timeout)))
        changed += machines_offline(silent, f"no heartbeat for {timeout} s")
    if workers is not None:
        alive = {w["id"]: w for w in workers if w.get("state") == "ALIVE"}
        lost = (Machine.objects.filter(state=Machine.ONLINE).exclude(worker_id="")
                .exclude(worker_id__in=list(alive)))
        changed += machines_offline(lost, "the Spark master lost its worker")
        # Only the two columns, and one UPDATE for all that changed (a CASE, per 1,000).
        stale = []
        for pk, worker_id, cores_in_use in (
                Machine.objects.exclude(state=Machine.REMOVED).exclude(worker_id="")
                .values_list("pk", "worker_id", "cores_in_use")):
            in_use = alive.get(worker_id, {}).get("coresused", 0)
            if cores_in_use != in_use:
                stale.append(Machine(pk=pk, cores_in_use=in_use))
        Machine.objects.bulk_update(stale, ["cores_in_use"], batch_size=1000)
    cleanup = settings.DMARKET_MACHINE_CLEANUP
    if cleanup:
        for machine in Machine.objects.filter(state=Machine.OFFLINE).filter(
                Q(last_heartbeat__isnull=True) | Q(
                    last_heartbeat__lt=now - timedelta(seconds=cleanup))):
            changed += machine_set_state(machine, Machine.REMOVED,
                                         f"offline for more than {cleanup} s")
    return changed
