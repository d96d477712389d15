"""`manage.py purge_dispatch_log`: delete old closed dispatches, their attempts and old events."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors import retention


class Command(BaseCommand):
    help = (
        "Delete succeeded and cancelled dispatches (with their attempts) older than "
        "--older-than days, failed ones older than --failed-older-than days, then events older "
        "than --older-than days with no dispatch left. Open dispatches are never deleted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            help="Days succeeded and cancelled dispatches are kept "
            f"(default DISPATCH_LOG_RETENTION_DAYS, now {settings.DISPATCH_LOG_RETENTION_DAYS}).",
        )
        parser.add_argument(
            "--failed-older-than",
            type=int,
            metavar="DAYS",
            help="Days failed dispatches are kept (default DISPATCH_LOG_FAILED_RETENTION_DAYS, "
            f"now {settings.DISPATCH_LOG_FAILED_RETENTION_DAYS}, or --older-than when longer).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be deleted."
        )
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="Rows per transaction (default 1000)."
        )

    def handle(
        self,
        *args: Any,
        older_than: int | None,
        failed_older_than: int | None,
        dry_run: bool,
        batch_size: int,
        **options: Any,
    ) -> None:
        older = settings.DISPATCH_LOG_RETENTION_DAYS if older_than is None else older_than
        if failed_older_than is None:
            # Raising only --older-than must not trip over the failed default being shorter.
            failed = max(settings.DISPATCH_LOG_FAILED_RETENTION_DAYS, older)
        else:
            failed = failed_older_than
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            retention.check_limits(older, failed, names=("--older-than", "--failed-older-than"))
            result = retention.purge_dispatch_log(
                older_than_days=older,
                failed_older_than_days=failed,
                dry_run=dry_run,
                batch_size=batch_size,
            )
        except retention.RetentionError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(result.summary()))
