from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "dmarket.web"
    verbose_name = "Dashboard"
