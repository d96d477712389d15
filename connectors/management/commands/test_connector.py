"""`manage.py test_connector NAME [--json]`: exit 0 when the connection works, 1 when not."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors import services
from connectors.management.reporting import write_test_result
from connectors.models import Connector


class Command(BaseCommand):
    help = (
        "Test a connector step by step (connect and TLS, token, probe) without writing business "
        "data; store the result. Exit status 0 when it works, 1 when not."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The connector's name.")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print the result as JSON."
        )

    def handle(self, *args: Any, name: str, as_json: bool, **options: Any) -> None:
        connector = Connector.objects.filter(name=name).first()
        if connector is None:
            known = ", ".join(Connector.objects.values_list("name", flat=True)[:20]) or "none"
            raise CommandError(f"No connector named {name!r}. Known connectors: {known}.")
        result = services.connector_test_connection(connector)
        write_test_result(self, result, as_json=as_json)
