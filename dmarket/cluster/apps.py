from django.apps import AppConfig


class ClusterConfig(AppConfig):
    name = "dmarket.cluster"
    verbose_name = "Spark cluster"
