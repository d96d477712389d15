"""`manage.py apply_connectors FILE.json [--dry-run]`: declarative upsert of connectors by name."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors.importing import common, connectors_json


class Command(BaseCommand):
    help = (
        "Create or update connectors by name from a JSON list of connector objects. Keys that "
        'are present are set, absent ones keep the stored value; a secret may be {"env": "VAR"}. '
        "All or nothing: any error writes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE.json")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would change; write nothing."
        )

    def handle(self, *args: Any, file: str, dry_run: bool, **options: Any) -> None:
        try:
            parsed = connectors_json.parse(common.read_text(file), environ=os.environ)
            changes = common.upsert(parsed, dry_run=dry_run)
        except common.InputError as exc:
            raise CommandError(common.error_message(file, exc.errors)) from None
        for line in common.report(changes, dry_run=dry_run):
            self.stdout.write(line)
