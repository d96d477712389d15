"""`manage.py test_exchange [--json]`: exit 0 when the Exchange connection works, 1 when not."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from connectors.management.reporting import write_test_result
from exchange_sync.connection import exchange_test_connection
from exchange_sync.models import ExchangeSettings


class Command(BaseCommand):
    help = (
        "Test the Exchange (Microsoft Graph) connection step by step (configuration, token, "
        "reading a mailbox, notifications) without writing to any mailbox; store the result. "
        "Exit status 0 when it works, 1 when not."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the result as JSON."
        )

    def handle(self, *args: Any, as_json: bool, **options: Any) -> None:
        result = exchange_test_connection(exchange_settings=ExchangeSettings.load())
        write_test_result(self, result, as_json=as_json)
