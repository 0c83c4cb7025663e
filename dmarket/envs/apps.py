from django.apps import AppConfig


class EnvsConfig(AppConfig):
    name = "dmarket.envs"
    default_auto_field = "django.db.models.BigAutoField"
