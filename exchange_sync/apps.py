from django.apps import AppConfig


class ExchangeSyncConfig(AppConfig):
    name = "exchange_sync"
    verbose_name = "Exchange sync"
    default_auto_field = "django.db.models.BigAutoField"
