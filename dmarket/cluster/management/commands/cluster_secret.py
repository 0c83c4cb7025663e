import shlex

from django.core.management.base import BaseCommand, CommandError

from dmarket.cluster import security


class Command(BaseCommand):
    help = ("The Spark cluster's security settings, for the scripts that start its master and "
            "workers: --shell prints, as shell assignments for eval, what a daemon needs: its secret (made on first use; Spark reads it from _SPARK_AUTH_SECRET, "
            "never a command line) and the -D options of SPARK_DAEMON_JAVA_OPTS. --rotate makes a new secret: the master must "
            "restart with it (scripts/rotate_cluster_secret.sh), running applications end, "
            "and each agent restarts its worker when its next heartbeat brings it.")

    def add_arguments(self, parser):
        parser.add_argument("--rotate", action="store_true")
        parser.add_argument("--shell", action="store_true")

    def handle(self, *args, rotate=False, shell=False, **options):
        if not security.needs_secret():
            if rotate:
                raise CommandError("Spark authentication is off (DMARKET_SPARK_AUTHENTICATE) "
                                   "or the master is local: there is no secret to rotate.")
        if rotate:
            try:
                security.cluster_secret_rotate()
            except ValueError as e:
                raise CommandError(str(e)) from None
            self.stderr.write("A new cluster secret is in place: restart the master "
                              "(scripts/rotate_cluster_secret.sh does).")
        if shell:
            secret = security.cluster_secret()
            out = {"DMARKET_SPARK_SECURITY_OPTS": security.daemon_java_opts()}
            if secret:
                out[security.SECRET_ENV] = secret
            for name, value in out.items():
                self.stdout.write(f"{name}={shlex.quote(value)}")
