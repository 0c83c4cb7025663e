from django.apps import AppConfig
from django.db.models.signals import post_migrate


def create_cache_tables(using, verbosity=0, **kwargs):
    # The throttles' cache is a database table (CACHES in settings.py): made with the other
    # tables, wherever migrate runs, so no deployment needs a step of its own for it.
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=verbosity)


class AccountsConfig(AppConfig):
    name = "dmarket.accounts"

    def ready(self):
        post_migrate.connect(create_cache_tables, sender=self,
                             dispatch_uid="dmarket_create_cache_tables")
