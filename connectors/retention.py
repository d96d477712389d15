"""Dispatch log retention: purge old closed dispatches (with their attempts) and old events.

Succeeded and cancelled dispatches go after `DISPATCH_LOG_RETENTION_DAYS` (default 90), failed
ones after the longer `DISPATCH_LOG_FAILED_RETENTION_DAYS` (default 365); an open one (pending,
sending, retrying) is never purged, whatever its age. "Older than" means created *and* last
changed before the cutoff, so a dispatch retried yesterday stays. Then events older than the
first limit that have no dispatch left go too. Appointments (current state) are kept.

Deletes run in batches, each its own transaction, so a large purge never holds the tables long.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from .models import AppointmentEvent, Attempt, Dispatch, DispatchStatus

logger = logging.getLogger(__name__)

MAX_DAYS = 36500  # a century: more is a typo, and would overflow the date arithmetic


class RetentionError(ValueError):
    """Limits that make no sense; the message names them and is safe to show."""


@dataclass(frozen=True)
class PurgeResult:
    dispatches: int
    attempts: int
    events: int
    cutoff: datetime
    failed_cutoff: datetime
    dry_run: bool = False

    def summary(self) -> str:
        counts = (
            f"{self.dispatches} dispatch(es) with {self.attempts} attempt(s) "
            f"and {self.events} event(s)"
        )
        limits = (
            f"succeeded and cancelled dispatches last changed before {self.cutoff:%Y-%m-%d %H:%M}"
            f", failed ones before {self.failed_cutoff:%Y-%m-%d %H:%M} (UTC)"
        )
        if self.dry_run:
            return f"Dry run: would purge {counts}: {limits}. Nothing was deleted."
        return f"Purged {counts}: {limits}."


def check_limits(
    older_than_days: int,
    failed_older_than_days: int,
    *,
    names: tuple[str, str] = ("older_than_days", "failed_older_than_days"),
) -> None:
    """Raise RetentionError unless both limits are 0..MAX_DAYS and failed ≥ the other one.

    `names` are how the caller's user knows the two limits (options, settings).
    """
    for name, days in zip(names, (older_than_days, failed_older_than_days), strict=True):
        if days < 0:
            raise RetentionError(f"{name} must be 0 days or more (got {days}).")
        if days > MAX_DAYS:
            raise RetentionError(f"{name} must be at most {MAX_DAYS} days (got {days}).")
    if failed_older_than_days < older_than_days:
        raise RetentionError(
            f"{names[1]} ({failed_older_than_days} days) must not be shorter than {names[0]} "
            f"({older_than_days} days): failed dispatches are kept at least as long as the others."
        )


def _purgeable_q(cutoff: datetime, failed_cutoff: datetime) -> Q:
    closed = Q(status__in=[DispatchStatus.SUCCEEDED, DispatchStatus.CANCELLED]) & Q(
        created_at__lt=cutoff, updated_at__lt=cutoff
    )
    failed = Q(status=DispatchStatus.FAILED) & Q(
        created_at__lt=failed_cutoff, updated_at__lt=failed_cutoff
    )
    return closed | failed


def _events_without_dispatches(
    cutoff: datetime, kept: QuerySet[Dispatch]
) -> QuerySet[AppointmentEvent]:
    return AppointmentEvent.objects.filter(received_at__lt=cutoff).filter(
        ~Exists(kept.filter(event=OuterRef("pk")))
    )


def _id_batches(queryset: QuerySet[Any], batch_size: int) -> Iterator[list[int]]:
    """Primary keys in ascending batches (keyset paging: no batch is read twice)."""
    last_pk = 0
    while True:
        ids = list(
            queryset.filter(pk__gt=last_pk).order_by("pk").values_list("pk", flat=True)[
                :batch_size
            ]
        )
        if not ids:
            return
        yield ids
        last_pk = ids[-1]


def _delete_locked(batch: QuerySet[Any]) -> dict[str, int]:
    """Delete one batch in its own transaction; returns the counts per model label.

    The rows still matching are locked first (PostgreSQL; SQLite's IMMEDIATE transactions lock
    the database): the delete cascades by primary key, so a row retried between the check and
    the delete must not slip through.
    """
    with transaction.atomic():
        pks = list(batch.select_for_update().values_list("pk", flat=True))
        if not pks:
            return {}
        _, deleted = batch.model._default_manager.filter(pk__in=pks).delete()
    return deleted


def purge_dispatch_log(
    *,
    older_than_days: int,
    failed_older_than_days: int,
    dry_run: bool = False,
    batch_size: int = 1000,
) -> PurgeResult:
    """Delete (or with `dry_run` only count) what the retention limits let go.

    Returns the counts. Raises RetentionError for limits check_limits refuses. Each batch
    re-checks its rows inside its transaction, so a dispatch retried meanwhile is kept.
    """
    check_limits(older_than_days, failed_older_than_days)
    if batch_size < 1:
        raise RetentionError(f"The batch size must be at least 1 (got {batch_size}).")
    now = timezone.now()
    cutoff = now - timedelta(days=older_than_days)
    failed_cutoff = now - timedelta(days=failed_older_than_days)
    purgeable = Dispatch.objects.filter(_purgeable_q(cutoff, failed_cutoff))
    if dry_run:
        return PurgeResult(
            dispatches=purgeable.count(),
            attempts=Attempt.objects.filter(dispatch__in=purgeable).count(),
            events=_events_without_dispatches(
                cutoff, Dispatch.objects.exclude(_purgeable_q(cutoff, failed_cutoff))
            ).count(),
            cutoff=cutoff,
            failed_cutoff=failed_cutoff,
            dry_run=True,
        )
    dispatches = attempts = events = 0
    for ids in _id_batches(purgeable, batch_size):
        deleted = _delete_locked(purgeable.filter(pk__in=ids))
        dispatches += deleted.get(Dispatch._meta.label, 0)
        attempts += deleted.get(Attempt._meta.label, 0)
    orphans = _events_without_dispatches(cutoff, Dispatch.objects.all())
    for ids in _id_batches(orphans, batch_size):
        events += _delete_locked(orphans.filter(pk__in=ids)).get(AppointmentEvent._meta.label, 0)
    result = PurgeResult(dispatches, attempts, events, cutoff, failed_cutoff)
    logger.info("%s", result.summary())
    return result


def purge_with_settings(*, dry_run: bool = False) -> PurgeResult:
    """purge_dispatch_log with the limits of the settings (raises RetentionError naming them)."""
    older = settings.DISPATCH_LOG_RETENTION_DAYS
    failed = settings.DISPATCH_LOG_FAILED_RETENTION_DAYS
    check_limits(
        older,
        failed,
        names=("DISPATCH_LOG_RETENTION_DAYS", "DISPATCH_LOG_FAILED_RETENTION_DAYS"),
    )
    return purge_dispatch_log(
        older_than_days=older, failed_older_than_days=failed, dry_run=dry_run
    )


def scheduled_purge() -> str:
    """The daily django-q2 schedule's entry point; its result (the summary) shows in the admin.
    Also purges the Exchange sync's log and notifications with the same retention."""
    from exchange_sync.retention import purge_exchange_records

    return f"{purge_with_settings().summary()} {purge_exchange_records()}"
