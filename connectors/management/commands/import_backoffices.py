"""`manage.py import_backoffices FILE [--dry-run]`: legacy "Multi back office" rows."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors.importing import backoffices, common


class Command(BaseCommand):
    help = (
        'Import legacy "Multi back office" rows (CSV or JSON; columns source_app, '
        "send_appointments, web_service, back_office, login, password, or the legacy captions) "
        "as connectors named after their source app. A re-import updates the same connectors. "
        "All or nothing: any error writes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE", help="A .csv or .json file.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would change; write nothing."
        )

    def handle(self, *args: Any, file: str, dry_run: bool, **options: Any) -> None:
        try:
            parsed = backoffices.parse(file, common.read_text(file))
            changes = common.upsert(
                parsed, dry_run=dry_run, field_names=backoffices.FIELD_NAMES
            )
        except common.InputError as exc:
            raise CommandError(common.error_message(file, exc.errors)) from None
        labels = [spec.label for _, spec in parsed.specs]
        for line in common.report(changes, dry_run=dry_run, labels=labels):
            self.stdout.write(line)
