from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "dmarket.common"
    default_auto_field = "django.db.models.BigAutoField"
