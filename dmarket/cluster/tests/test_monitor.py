"""The monitor daemon (failure detector) of shared machines: heartbeats and the master's view."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dmarket.machines.models import Machine, MachineStateChange
from dmarket.machines.services import machine_heartbeat, machines_monitor

pytestmark = pytest.mark.django_db


@pytest.fixture
def machine(make_user, settings):
    settings.DMARKET_HEARTBEAT_TIMEOUT = 30
    machine = Machine.objects.create(user=make_user("carol"), cores=2, memory_mb=2048,
                                     address="127.0.0.2", worker_id="worker-1")
    machine_heartbeat(machine, worker_state="ALIVE", worker_id="worker-1")
    return machine


ALIVE = [{"id": "worker-1", "state": "ALIVE", "coresused": 2}]


def states(machine):
    return list(MachineStateChange.objects.filter(machine=machine).order_by("id")
                .values_list("state", "reason"))


def test_a_machine_heard_from_within_the_timeout_stays_online(machine):
    assert machines_monitor(ALIVE, now=timezone.now() + timedelta(seconds=29)) == 0
    machine.refresh_from_db()
    assert (machine.state, machine.cores_in_use) == (Machine.ONLINE, 2)


def test_silence_past_the_timeout_makes_it_offline_and_a_heartbeat_brings_it_back(machine):
    assert machines_monitor(ALIVE, now=timezone.now() + timedelta(seconds=31)) == 1
    machine.refresh_from_db()
    assert machine.state == Machine.OFFLINE

    machine_heartbeat(machine, worker_state="ALIVE")

    assert states(machine) == [("ONLINE", "heartbeat"), ("OFFLINE", "no heartbeat for 30 s"),
                               ("ONLINE", "heartbeat")]


def test_each_machine_is_held_to_the_timeout_its_agent_was_told(machine, make_user):
    """After the interval stretched, machines told the longer timeout are not offline at the
    shorter one; machines still on the shorter one are."""
    told_longer = Machine.objects.create(user=make_user("dave"), cores=2, memory_mb=2048,
                                         address="127.0.0.3", worker_id="worker-2")
    machine_heartbeat(told_longer, worker_state="ALIVE", worker_id="worker-2", timeout=45)
    alive = ALIVE + [{"id": "worker-2", "state": "ALIVE", "coresused": 0}]

    assert machines_monitor(alive, now=timezone.now() + timedelta(seconds=31)) == 1
    told_longer.refresh_from_db()
    assert told_longer.state == Machine.ONLINE
    assert machines_monitor(alive, now=timezone.now() + timedelta(seconds=46)) == 1

    assert states(machine)[-1] == ("OFFLINE", "no heartbeat for 30 s")
    assert states(told_longer)[-1] == ("OFFLINE", "no heartbeat for 45 s")


def test_a_machine_never_told_a_timeout_is_held_to_the_setting(machine, settings):
    Machine.objects.filter(pk=machine.pk).update(heartbeat_timeout=0)
    settings.DMARKET_HEARTBEAT_TIMEOUT = 60
    assert machines_monitor(ALIVE, now=timezone.now() + timedelta(seconds=59)) == 0
    assert machines_monitor(ALIVE, now=timezone.now() + timedelta(seconds=61)) == 1
    assert states(machine)[-1] == ("OFFLINE", "no heartbeat for 60 s")


def test_a_worker_the_master_lost_counts_as_offline(machine):
    lost = [{"id": "worker-1", "state": "DEAD", "coresused": 0}]
    assert machines_monitor(lost) == 1
    machine.refresh_from_db()
    assert (machine.state, machine.cores_in_use) == (Machine.OFFLINE, 0)
    assert states(machine)[-1] == ("OFFLINE", "the Spark master lost its worker")


def test_without_the_master_only_heartbeats_count(machine):
    assert machines_monitor(None) == 0
    machine.refresh_from_db()
    assert machine.state == Machine.ONLINE


def test_an_agent_whose_worker_is_down_reports_it_offline(machine):
    machine_heartbeat(machine, worker_state="STOPPED")
    machine.refresh_from_db()
    assert machine.state == Machine.OFFLINE
    assert states(machine)[-1] == ("OFFLINE", "its worker is STOPPED")


def test_paused_machines_go_offline_when_silent_too(machine):
    Machine.objects.filter(pk=machine.pk).update(state=Machine.PAUSED)
    assert machines_monitor(ALIVE, now=timezone.now() + timedelta(seconds=31)) == 1


def test_clean_up_removes_machines_offline_for_longer_than_the_setting(machine, settings):
    settings.DMARKET_MACHINE_CLEANUP = 3600
    later = timezone.now() + timedelta(seconds=31)
    machines_monitor(ALIVE, now=later)
    assert machines_monitor(ALIVE, now=later + timedelta(seconds=3600)) == 1
    machine.refresh_from_db()
    assert machine.state == Machine.REMOVED
    assert states(machine)[-1] == ("REMOVED", "offline for more than 3600 s")


def test_a_thousand_silent_machines_go_offline_in_a_few_statements(
        make_user, settings, django_assert_max_num_queries):
    settings.DMARKET_HEARTBEAT_TIMEOUT = 30
    owner = make_user("fleet")
    long_ago = timezone.now() - timedelta(minutes=5)
    Machine.objects.bulk_create(
        Machine(user=owner, cores=1, memory_mb=512, address=f"10.0.{i // 250}.{i % 250}",
                worker_id=f"worker-{i}", state=Machine.ONLINE, last_heartbeat=long_ago)
        for i in range(1000))
    alive = [{"id": f"worker-{i}", "state": "ALIVE", "coresused": 0} for i in range(1000)]

    with django_assert_max_num_queries(12):
        changed = machines_monitor(alive)

    assert changed == 1000
    assert Machine.objects.filter(state=Machine.OFFLINE).count() == 1000
    assert MachineStateChange.objects.filter(
        state=Machine.OFFLINE, reason="no heartbeat for 30 s").count() == 1000
    # A second pass finds nothing to do.
    assert machines_monitor(alive) == 0


def test_a_thousand_workers_cores_in_use_are_recorded_in_a_few_statements(
        make_user, settings, django_assert_max_num_queries):
    settings.DMARKET_HEARTBEAT_TIMEOUT = 30
    owner = make_user("fleet")
    now = timezone.now()
    Machine.objects.bulk_create(
        Machine(user=owner, cores=4, memory_mb=512, address=f"10.0.{i // 250}.{i % 250}",
                worker_id=f"worker-{i}", state=Machine.ONLINE, last_heartbeat=now)
        for i in range(1000))
    alive = [{"id": f"worker-{i}", "state": "ALIVE", "coresused": i % 4} for i in range(1000)]

    # 750 machines' counts changed: one UPDATE for them all, not 750.
    with django_assert_max_num_queries(10):
        assert machines_monitor(alive) == 0

    used = dict(Machine.objects.values_list("worker_id", "cores_in_use"))
    assert used == {f"worker-{i}": i % 4 for i in range(1000)}
