"""The daily purge also removes old Exchange sync log entries and Graph notifications."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from connectors.tasks import purge_dispatch_log
from exchange_sync.models import Notification, SyncLogEntry

pytestmark = pytest.mark.django_db


def test_the_daily_purge_keeps_recent_records_and_removes_old_ones(settings):
    settings.DISPATCH_LOG_RETENTION_DAYS = 30
    old, recent = timezone.now() - timedelta(days=31), timezone.now() - timedelta(days=29)
    for moment in (old, recent):
        entry = SyncLogEntry.objects.create(direction="outbound", kind="created", message="x")
        SyncLogEntry.objects.filter(pk=entry.pk).update(at=moment)
        note = Notification.objects.create(kind="change", subscription_id_text="s", payload={})
        Notification.objects.filter(pk=note.pk).update(received_at=moment)

    summary = purge_dispatch_log()

    assert "Purged 1 Exchange sync log entry and 1 Graph notification(s) older than 30 days." \
        in summary
    assert list(SyncLogEntry.objects.values_list("at", flat=True)) == [recent]
    assert list(Notification.objects.values_list("received_at", flat=True)) == [recent]
