"""Claiming a dispatch: due, first open one of its chain, not held, not taken; coalescing."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from connectors.crypto import DecryptionError
from connectors.models import AttemptOutcome, Connector, Dispatch

from .common import CLAIMABLE, S, finish, lease_seconds, locking, log_attempt, open_before, owner


def _coalesce(dispatch: Dispatch, now: datetime) -> Dispatch:
    """If newer updates wait behind this update, cancel it (and all but the newest of them)
    and return the newest, due now; else return the dispatch itself."""
    if dispatch.action != "update":
        return dispatch
    waiting = Dispatch.objects.filter(
        appointment_id=dispatch.appointment_id, connector_id=dispatch.connector_id,
        pk__gt=dispatch.pk, status__in=CLAIMABLE,
    ).order_by("pk")
    later = list(locking(waiting))
    # skip_locked leaves out a row another worker holds at this moment (e.g. while it checks
    # that row's own claim). Coalescing past that gap would send the newest state and leave
    # the held, older update pending, to be sent after it. Send this one as it is instead.
    if [candidate.pk for candidate in later] != list(waiting.values_list("pk", flat=True)):
        return dispatch
    run = []
    for candidate in later:
        if candidate.action != "update":
            break
        run.append(candidate)
    if not run:
        return dispatch
    newest = run[-1]
    for superseded in [dispatch, *run[:-1]]:
        superseded.status = S.CANCELLED
        superseded.superseded_by = newest
        superseded.next_attempt_at = None
        superseded.save(update_fields=["status", "superseded_by", "next_attempt_at", "updated_at"])
        log_attempt(superseded, AttemptOutcome.COALESCED,
             message=f"Coalesced: a newer update (dispatch {newest.pk}) carries the newest "
             "state and is sent instead.")
    newest.next_attempt_at = now
    return newest


UNREADABLE_HINT = (
    "A secret of this connector was encrypted with a key that FIELD_ENCRYPTION_KEYS no longer "
    "holds. Add that key back (after the current first key) and restart, or enter the secret "
    "again in the connector form; then retry this dispatch."
)


def _fail_unreadable(dispatch: Dispatch, error: DecryptionError) -> None:
    """Fail the dispatch at once (retrying cannot help) naming the connector and the field;
    the stored secret is left exactly as it is."""
    name = Connector.objects.filter(pk=dispatch.connector_id).values_list("name", flat=True)[0]
    dispatch.last_error = f"Connector '{name}': {error}"[:2000]
    dispatch.last_hint = UNREADABLE_HINT
    dispatch.last_status_code = None
    finish(dispatch, S.FAILED)
    log_attempt(dispatch, AttemptOutcome.FAILED, message=dispatch.last_error,
                hint=UNREADABLE_HINT, error_class="DecryptionError")


def _due(dispatch: Dispatch, now: datetime) -> bool:
    """Claimable (or its lease is lost) and due."""
    lease_lost = (dispatch.status == S.SENDING and dispatch.lease_until is not None
                  and dispatch.lease_until < now)
    if dispatch.status not in CLAIMABLE and not lease_lost:
        return False
    return not (dispatch.next_attempt_at and dispatch.next_attempt_at > now)


def claim(dispatch_id: int) -> Dispatch | None:
    """Take the dispatch for sending (status `sending`, under a lease), or None when it is not
    due, not the first open one of its chain, held by quarantine, or taken by another worker.

    A dispatch of a disabled connector is cancelled (and logged) instead. The dispatch row is
    locked and read with its event and connector in one query (only the dispatch row is locked,
    as before); the returned dispatch carries both.
    """
    now = timezone.now()
    with transaction.atomic():
        try:
            dispatch = locking(
                Dispatch.objects.filter(pk=dispatch_id).select_related("event", "connector")
            ).first()
        except DecryptionError as exc:  # the connector's secret: lock and check the row alone
            dispatch = locking(Dispatch.objects.filter(pk=dispatch_id)).first()
            if dispatch is not None and _due(dispatch, now):
                _fail_unreadable(dispatch, exc)
            return None
        if dispatch is None or not _due(dispatch, now):
            return None
        connector = dispatch.connector
        if connector.quarantined_at is not None:
            return None
        if not connector.enabled:
            finish(dispatch, S.CANCELLED)
            log_attempt(dispatch, AttemptOutcome.CANCELLED,
                 message="Cancelled: the connector was disabled before this was sent.")
            return None
        if open_before(dispatch):
            return None
        dispatch = _coalesce(dispatch, now)
        dispatch.status = S.SENDING
        dispatch.attempts += 1
        dispatch.lease_until = now + timedelta(seconds=lease_seconds(connector))
        dispatch.lease_owner = owner()
        Dispatch.objects.filter(pk=dispatch.pk).update(
            status=dispatch.status, attempts=dispatch.attempts, lease_until=dispatch.lease_until,
            lease_owner=dispatch.lease_owner, next_attempt_at=dispatch.next_attempt_at,
            updated_at=now,
        )
        dispatch.updated_at = now
        dispatch.connector = connector
        return dispatch
