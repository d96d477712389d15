"""`manage.py rotate_encryption_keys`: re-encrypt every stored secret with the first key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors import keyrotation
from connectors.crypto import DecryptionError, EncryptionKeyError
from dimeconnect.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret with the first key of FIELD_ENCRYPTION_KEYS, so older keys can "
        "be removed afterwards. Safe to run again; checks every secret opens before writing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Rows per transaction.")

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            total = keyrotation.verify_all()
            bar = ProgressBar(self.stdout, "Re-encrypting secrets", total)
            result = keyrotation.rotate_all(batch_size=batch_size, progress=bar.advance)
        except (DecryptionError, EncryptionKeyError) as exc:
            raise CommandError(f"{exc} Nothing was changed.") from None
        bar.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted {result.rotated} secret(s) with the first key; "
                f"{result.current} already used it."
            )
        )
