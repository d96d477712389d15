from django.apps import AppConfig


class DimeconnectConfig(AppConfig):
    name = "dimeconnect"
    verbose_name = "DimeConnect"
