"""The outbound queue: one PendingSync row per appointment whose Outlook events are stale.

Intake marks an appointment (in the event's transaction) and rings the doorbell after commit;
a task claims due rows under a lease, pushes them, and removes each row only if no newer change
arrived meanwhile (`version`). The "exchange: push pending" schedule picks up anything whose
doorbell was lost or whose worker died (an expired claim).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.cache import caches
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from connectors.models import Appointment

from ..models import EventLink, ExchangeSettings, PendingSync
from ..models.settings import SINGLETON_PK
from ..queueing import queue_task
from ..resources import resource_entries, resources_upsert

log = logging.getLogger(__name__)

# Changes within this time share one push (and so its `$batch` requests): the doorbell rings at
# most once per debounce and per process, and the push waits this long before claiming.
PUSH_DEBOUNCE_S = 1.0
DOORBELL_KEY = "exchange_sync:push-doorbell"
CLAIM_LEASE_S = 300  # a push of one claim takes seconds; a dead worker's claim returns after this
RETRY_DELAYS_S = (5, 30, 120, 600, 1800, 3600)  # then hourly


@dataclass(frozen=True)
class Claim:
    pk: int
    appointment_id: int
    version: int
    force: bool


def exchange_enabled() -> bool:
    return ExchangeSettings.objects.filter(pk=SINGLETON_PK, enabled=True).exists()


def appointments_changed(
    changes: Iterable[tuple[Appointment, Mapping[str, Any]]], *, created: Set[int] = frozenset(),
) -> set[int]:
    """Intake's hook, inside the events' transaction, after newer states were stored.

    `changes` holds each changed appointment with the event data that set its state; `created`
    the ids of those created in this transaction (none has events in Outlook yet). Creates
    or updates the resources the events name (always), and marks for an outbound push every
    appointment of which a resource syncs, or which has events in Outlook already (a resource
    taken off must lose its event) — when Exchange sync is on. Returns the ids it marked (the
    caller then calls `queue_push` after commit). A handful of queries for a whole request.
    """
    changes = list(changes)
    per_app: dict[str, dict[str, str]] = {}
    for appointment, data in changes:
        entries = per_app.setdefault(appointment.source_app, {})
        for number, email in resource_entries(data).items():
            if email or number not in entries:
                entries[number] = email
    syncing = {
        (app, number)
        for app, entries in per_app.items()
        for number, resource in resources_upsert(source_app=app, entries=entries).items()
        if resource.sync_enabled
    }
    wanted = {a.pk for a, data in changes
              if any((a.source_app, no) in syncing for no in resource_entries(data))}
    others = [a.pk for a, _ in changes if a.pk not in wanted and a.pk not in created]
    if others:
        wanted.update(EventLink.objects.filter(appointment_id__in=others).exclude(event_id="")
                      .values_list("appointment_id", flat=True))
    if not wanted or not exchange_enabled():
        return set()
    mark_pending(wanted)
    return wanted


def mark_pending(appointment_ids: Iterable[int], *, force: bool = False) -> int:
    """Queue the appointments for a push now (a newer version of each, if already queued).
    `force` rewrites their events even where nothing changed. Returns how many."""
    ids = sorted(set(appointment_ids))
    now = timezone.now()
    changes: dict[str, Any] = {"version": F("version") + 1, "next_attempt_at": now, "attempts": 0}
    if force:
        changes["force"] = True
    known: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = PendingSync.objects.filter(appointment_id__in=chunk)
        rows.update(**changes)
        known.update(rows.values_list("appointment_id", flat=True))
        PendingSync.objects.bulk_create(
            [PendingSync(appointment_id=pk, next_attempt_at=now, force=force)
             for pk in chunk if pk not in known],
            ignore_conflicts=True,
        )
    return len(ids)


def queue_push() -> None:
    """Ring the doorbell: a push task, unless one was queued less than PUSH_DEBOUNCE_S ago.

    Skipping is safe: the skipped change was committed before this runs, and the queued push
    claims only after waiting PUSH_DEBOUNCE_S from when it was queued — after the doorbell key
    has expired — so it finds the change. A broker failure is only logged (the schedule pushes
    within a minute).
    """
    if caches["default"].add(DOORBELL_KEY, 1, timeout=PUSH_DEBOUNCE_S):
        queue_task("exchange_sync.tasks.push_pending_task", "exchange: push")


def claim(limit: int) -> list[Claim]:
    """Take up to `limit` due rows under a lease (rows another worker holds are skipped)."""
    now = timezone.now()
    with transaction.atomic():
        due = (PendingSync.objects.filter(next_attempt_at__lte=now)
               .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
               .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
               .order_by("next_attempt_at", "pk"))
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        claims = [Claim(row["pk"], row["appointment_id"], row["version"], row["force"])
                  for row in due.values("pk", "appointment_id", "version", "force")[:limit]]
        PendingSync.objects.filter(pk__in=[c.pk for c in claims]).update(
            claimed_until=now + timedelta(seconds=CLAIM_LEASE_S)
        )
    return claims


def done(claims: Iterable[Claim]) -> None:
    """Remove the rows of finished claims, unless a newer change came in (then it is due)."""
    for claim in claims:
        if not PendingSync.objects.filter(pk=claim.pk, version=claim.version).delete()[0]:
            PendingSync.objects.filter(pk=claim.pk).update(claimed_until=None)


def retry_later(claim: Claim, *, error: str, retry_after: float | None = None) -> None:
    """Release a claim whose push failed transiently, due again after the backoff."""
    row = PendingSync.objects.filter(pk=claim.pk).first()
    if row is None:
        return
    now = timezone.now()
    delay = float(RETRY_DELAYS_S[min(row.attempts, len(RETRY_DELAYS_S) - 1)])
    if retry_after is not None:
        delay = max(delay, retry_after)
    if row.version != claim.version:
        delay = 0  # a newer change is waiting: try it now (but not before Graph's Retry-After)
    PendingSync.objects.filter(pk=claim.pk).update(
        claimed_until=None, attempts=F("attempts") + 1, last_error=error[:2000],
        next_attempt_at=now + timedelta(seconds=delay),
        not_before=None if retry_after is None else now + timedelta(seconds=retry_after),
    )
