"""manage.py cluster_machine: the operator's local worker (start_cluster.sh) as a machine."""

import pytest
from django.core.management import CommandError, call_command

from dmarket.machines.models import Machine

pytestmark = pytest.mark.django_db


def test_the_local_worker_is_a_cpu_machine_of_the_operator(staff):
    call_command("cluster_machine", "--address", "127.0.0.2", "--cores", "2",
                 "--memory-mb", "4096", "--owner", staff.username)

    machine = Machine.objects.get()
    assert (machine.user, machine.machine_type, machine.gpus, machine.cores) == (
        staff, "cpu", 0, 2)


def test_it_cannot_be_a_gpu_machine_its_worker_offers_no_gpu(staff):
    with pytest.raises(CommandError, match="offers no GPU: --type cpu only"):
        call_command("cluster_machine", "--address", "127.0.0.2", "--cores", "2",
                     "--memory-mb", "4096", "--type", "gpu", "--owner", staff.username)

    assert not Machine.objects.exists()
