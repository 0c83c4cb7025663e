from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from dmarket_client.agent import python_platform

from dmarket.machines.models import Machine
from dmarket.machines.services import machine_heartbeat


class Command(BaseCommand):
    help = ("Register a Spark worker started by scripts/start_cluster.sh as a machine of the "
            "operator account (DJANGO_SUPERUSER_USERNAME, else the first superuser), or "
            "update it, and mark it online.")

    def add_arguments(self, parser):
        parser.add_argument("--address", required=True)
        parser.add_argument("--cores", type=int, required=True)
        parser.add_argument("--memory-mb", type=int, required=True)
        parser.add_argument("--type", default="cpu")
        parser.add_argument("--owner", default=None,
                            help="username of the owner (default: the operator account)")

    def handle(self, *args, **options):
        import os

        if options["type"] != "cpu":
            # Its worker, started by start_cluster.sh, offers Spark no GPU.
            raise CommandError("A worker of start_cluster.sh offers no GPU: --type cpu only (a "
                               "machine with GPUs joins with dmarket machine add --gpus N).")

        User = get_user_model()
        username = options["owner"] or os.environ.get("DJANGO_SUPERUSER_USERNAME")
        owner = (User.objects.filter(username=username).first() if username else
                 User.objects.filter(is_superuser=True).order_by("id").first())
        if owner is None:
            if username:
                raise CommandError(f"No user {username!r}.")
            # No operator yet: one that cannot log in until given a password.
            owner = User.objects.create_superuser("admin", "", None)
            self.stdout.write("Created the operator account 'admin' (no password: set one "
                              "with manage.py changepassword admin).")
        machine = (Machine.objects.filter(user=owner, address=options["address"])
                   .exclude(state=Machine.REMOVED).order_by("-id").first())
        fields = {"cores": options["cores"], "memory_mb": options["memory_mb"],
                  "machine_type": options["type"]}
        if machine is None:
            machine = Machine.objects.create(user=owner, address=options["address"],
                                             name=f"local worker {options['address']}", **fields)
        else:
            for name, value in fields.items():
                setattr(machine, name, value)
            machine.save(update_fields=list(fields))
        # Its worker runs this host's Python (DMARKET_EXECUTOR_PYTHON).
        machine_heartbeat(machine, worker_state="ALIVE", **python_platform())
        self.stdout.write(f"Machine {machine.pk} ({machine.address}) of {owner.username}: "
                          f"{machine.state}")
