"""A job's environment is for one Python and platform: the launcher claims the job only while
some online machine runs them, and says on the job why it waits until then."""

import pytest

from dmarket.cluster.launcher import claimable, launcher_claim, waiting_reasons
from dmarket.envs.models import Environment
from dmarket.jobs.models import Job
from dmarket.jobs.tests.util import submitted
from dmarket.machines.models import Machine

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready_env(db):
    return Environment.objects.create(key="k" * 64, requirements="dmkprobe==1.0\n",
                                      python="3.99", platform="linux-riscv", status="READY",
                                      size=1, sha256="0" * 64)


def test_a_job_waits_until_a_machine_runs_its_python(alice, bob, ready_env, entry_file):
    job = submitted(alice, entry_file, requirements="dmkprobe==1.0\n")
    Job.objects.filter(pk=job.pk).update(environment=ready_env, env_python="3.99",
                                         env_platform="linux-riscv")
    plain = submitted(bob, entry_file)
    machine = Machine.objects.create(user=bob, cores=1, memory_mb=1024, address="127.0.0.9",
                                     state=Machine.ONLINE, python="3.11",
                                     platform="linux-x86_64")

    assert list(claimable(Job.objects.filter(status=Job.QUEUED))) == [plain]
    waiting_reasons()
    job.refresh_from_db()
    assert job.status_reason == ("waiting: no online machine runs Python 3.99 on linux-riscv, "
                                 "which its environment is for")
    assert launcher_claim("l1") == plain
    assert launcher_claim("l1") is None

    Machine.objects.filter(pk=machine.pk).update(python="3.99", platform="linux-riscv")
    claimed = launcher_claim("l1")
    assert (claimed.pk, claimed.status, claimed.status_reason) == (job.pk, Job.STARTING, "")


def test_a_job_waits_while_its_environment_builds(alice, entry_file):
    job = submitted(alice, entry_file, requirements="dmkprobe==1.0\n")
    assert job.environment.status == Environment.BUILDING
    assert job.status_reason == "waiting: its environment is being built"
    Machine.objects.create(user=alice, cores=1, memory_mb=1024, address="127.0.0.9",
                           state=Machine.ONLINE, python=job.env_python,
                           platform=job.env_platform)
    assert launcher_claim("l1") is None
    Environment.objects.update(status=Environment.READY)
    assert launcher_claim("l1").pk == job.pk
