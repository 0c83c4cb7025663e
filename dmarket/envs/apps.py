from django.apps import AppConfig


class EnvsConfig(AppConfig):
    name = "dmarket.envs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The file store's sweep keeps the packed environments in the object store: it lives
        # below envs and imports nothing of it, so envs tells it which keys are its own.
        from dmarket.files.services import storage_users_add

        from .services import env_blobs_named

        storage_users_add("envs/", env_blobs_named)
