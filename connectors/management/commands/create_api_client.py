"""`manage.py create_api_client NAME --source-app APP [--source-app APP …]`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors import services


class Command(BaseCommand):
    help = (
        "Create an API client allowed to post events for the given source apps. The key is "
        "printed alone on the last line; it is the only time it is shown."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--source-app",
            dest="source_apps",
            action="append",
            required=True,
            metavar="APP",
            help="A source app the client may post for (repeat for several).",
        )

    def handle(self, *args: Any, name: str, source_apps: list[str], **options: Any) -> None:
        try:
            client, key = services.api_client_create(name=name, source_apps=source_apps)
        except ValidationError as exc:
            lines = [
                message if field == "__all__" else f"{field}: {message}"
                for field, message in services.field_messages(exc)
            ]
            raise CommandError("Cannot create the API client: " + " ".join(lines)) from None
        self.stdout.write(
            f"Created API client {client.name} for source app(s) {', '.join(client.source_apps)}."
        )
        self.stdout.write("Its key follows; store it now, it is not shown again:")
        self.stdout.write(key)
