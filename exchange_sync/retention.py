"""Retention of the Exchange sync's records: the sync log and the stored Graph notifications
go after `DISPATCH_LOG_RETENTION_DAYS`, like the dispatch log they sit beside. Run by the daily
"dimeconnect: purge dispatch log" schedule (connectors.retention.scheduled_purge)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import Notification, SyncLogEntry

BATCH = 2000


def _purge(model: type[SyncLogEntry] | type[Notification], field: str, days: int) -> int:
    cutoff = timezone.now() - timedelta(days=days)
    deleted = 0
    while True:
        ids = list(model.objects.filter(**{f"{field}__lt": cutoff})
                   .values_list("pk", flat=True)[:BATCH])
        if not ids:
            return deleted
        deleted += model.objects.filter(pk__in=ids).delete()[0]


def purge_exchange_records(*, older_than_days: int | None = None) -> str:
    """Delete sync log entries and notifications older than the limit (default
    DISPATCH_LOG_RETENTION_DAYS), in batches; returns a one-line summary."""
    days = settings.DISPATCH_LOG_RETENTION_DAYS if older_than_days is None else older_than_days
    log = _purge(SyncLogEntry, "at", days)
    notifications = _purge(Notification, "received_at", days)
    return (f"Purged {log} Exchange sync log entr{'y' if log == 1 else 'ies'} and "
            f"{notifications} Graph notification(s) older than {days} days.")
