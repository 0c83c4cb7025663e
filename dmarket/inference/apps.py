from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "dmarket.inference"
