"""Claiming a dispatch: due, first open one of its chain, not held, not taken; coalescing."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

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


def claim(dispatch_id: int) -> Dispatch | None:
    """Take the dispatch for sending (status `sending`, under a lease), or None when it is not
    due, not the first open one of its chain, held by quarantine, or taken by another worker.

    A dispatch of a disabled connector is cancelled (and logged) instead.
    """
    now = timezone.now()
    with transaction.atomic():
        dispatch = locking(Dispatch.objects.filter(pk=dispatch_id)).first()
        if dispatch is None:
            return None
        lease_lost = (dispatch.status == S.SENDING and dispatch.lease_until is not None
                      and dispatch.lease_until < now)
        if dispatch.status not in CLAIMABLE and not lease_lost:
            return None
        if dispatch.next_attempt_at and dispatch.next_attempt_at > now:
            return None
        connector = Connector.objects.get(pk=dispatch.connector_id)
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
        dispatch.save(update_fields=["status", "attempts", "lease_until", "lease_owner",
                                     "next_attempt_at", "updated_at"])
        dispatch.connector = connector
        return dispatch
