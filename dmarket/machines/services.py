from django.db import transaction
from django.utils import timezone

from .models import Machine, MachineStateChange


def machine_set_state(machine, state, reason=""):
    """Move the machine to `state` and record it in its history; no row if unchanged.

    REMOVED is final: a caller that read the machine before a concurrent removal (a heartbeat,
    an operator's action) must not bring it back.
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
        locked.save(update_fields=fields)
        MachineStateChange.objects.create(machine=locked, state=state, reason=reason)
    machine.state = locked.state
    machine.removed_at = locked.removed_at
    return True


def machine_heartbeat(machine, worker_state="", worker_id=""):
    """Record that the machine's agent is alive; ONLINE while shared, PAUSED outside."""
    now = timezone.now()
    machine.last_heartbeat = now
    fields = ["last_heartbeat"]
    if worker_state:
        machine.worker_state = worker_state
        fields.append("worker_state")
    if worker_id:
        machine.worker_id = worker_id
        fields.append("worker_id")
    machine.save(update_fields=fields)
    if machine.is_shared_at(now):
        machine_set_state(machine, Machine.ONLINE, "heartbeat")
    else:
        machine_set_state(machine, Machine.PAUSED, "outside its sharing window")
    return machine
