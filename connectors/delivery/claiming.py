"""Claiming dispatches, one (`claim`) or a page of a connector's chain heads (`claim_page`): due,
first open one of its chain, not held, not taken; coalescing; the page's lease."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from connectors.backoffices import http
from connectors.crypto import DecryptionError
from connectors.models import OPEN_STATUSES, AttemptOutcome, Connector, Dispatch

from .common import (
    CLAIMABLE,
    S,
    chain_heads,
    finish,
    lease_seconds,
    locking,
    log_attempt,
    open_before,
    owner,
)


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


def _cancel_disabled(dispatch: Dispatch) -> None:
    finish(dispatch, S.CANCELLED)
    log_attempt(dispatch, AttemptOutcome.CANCELLED,
                message="Cancelled: the connector was disabled before this was sent.")


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
            _cancel_disabled(dispatch)
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


@dataclass
class Page:
    """Dispatches of one connector claimed together (status `sending`, one lease), to be sent
    one after another by the worker that claimed them."""

    connector: Connector
    dispatches: list[Dispatch]
    lease_until: datetime
    before: dict[int, str]  # each one's status before the claim

    def keep(self, remaining: Sequence[Dispatch]) -> list[Dispatch]:
        """Before the next send: renew the lease of `remaining` when it could run out during
        that send (they are held longer than one claim's lease); returns those still ours."""
        now = timezone.now()
        if not remaining or self.lease_until - now > timedelta(
            seconds=2 * http.total_timeout(self.connector)
        ):
            return list(remaining)
        self.lease_until = now + timedelta(seconds=lease_seconds(self.connector))
        ids = [dispatch.pk for dispatch in remaining]
        ours = _held(ids)
        renewed = ours.update(lease_until=self.lease_until, updated_at=now)
        if renewed == len(ids):
            return list(remaining)
        # The sweeper took some back (this worker stalled past the lease): not ours to send.
        kept = set(ours.values_list("pk", flat=True))
        return [dispatch for dispatch in remaining if dispatch.pk in kept]

    def release(self, remaining: Sequence[Dispatch]) -> None:
        """Give back claimed dispatches that were not sent (out of time): due as before."""
        for status in {self.before[dispatch.pk] for dispatch in remaining}:
            ids = [d.pk for d in remaining if self.before[d.pk] == status]
            _held(ids).update(status=status, attempts=F("attempts") - 1, lease_until=None,
                              lease_owner="", updated_at=timezone.now())


def _held(ids: Sequence[int]) -> QuerySet[Dispatch]:
    return Dispatch.objects.filter(pk__in=ids, status=S.SENDING, lease_owner=owner())


def claim_page(connector_id: int, limit: int) -> Page | None:
    """Claim up to `limit` of the connector's due chain heads, oldest first, in one
    transaction of a few statements whatever their number: the heads locked and read with
    their events (on PostgreSQL skipping rows another worker is claiming, so concurrent
    claimers take different heads), the connector once, the order of every chain checked
    again in one query, one UPDATE. None when nothing was taken.

    The checks are `claim`'s: due, first open one of its chain, not held by quarantine,
    disabled (cancelled), coalescing. A connector whose secret cannot be decrypted falls back
    to `claim` for each head, which fails them.
    """
    now = timezone.now()
    heads = chain_heads(now).filter(connector_id=connector_id).order_by("pk")
    try:
        connector = Connector.objects.get(pk=connector_id)
    except Connector.DoesNotExist:
        return None
    except DecryptionError:
        for dispatch_id in heads.values_list("pk", flat=True)[:limit]:
            claim(dispatch_id)
        return None
    if connector.quarantined_at is not None:
        return None
    with transaction.atomic():
        rows = [dispatch for dispatch in locking(heads.select_related("event"))[:limit]
                if _due(dispatch, now)]
        if not rows:
            return None
        if not connector.enabled:
            for dispatch in rows:
                _cancel_disabled(dispatch)
            return None
        taken, newest = [], []
        for dispatch, later in _chain_firsts(rows):
            sent = _coalesce(dispatch, now) if later else dispatch
            taken.append(sent)
            if sent is not dispatch:
                newest.append(sent.pk)
        rows = taken
        before = {dispatch.pk: dispatch.status for dispatch in rows}
        lease_until = now + timedelta(seconds=lease_seconds(connector))
        Dispatch.objects.filter(pk__in=list(before)).update(
            status=S.SENDING, attempts=F("attempts") + 1, lease_until=lease_until,
            lease_owner=owner(), updated_at=now,
        )
        if newest:  # a coalesced update's newest state is due now, as `_coalesce` set it
            Dispatch.objects.filter(pk__in=newest).update(next_attempt_at=now)
    for dispatch in rows:
        dispatch.status = S.SENDING
        dispatch.attempts += 1
        dispatch.lease_until = lease_until
        dispatch.lease_owner = owner()
        dispatch.updated_at = now
        dispatch.connector = connector
    return Page(connector, rows, lease_until, before) if rows else None


def _chain_firsts(rows: list[Dispatch]) -> list[tuple[Dispatch, bool]]:
    """The rows with no earlier open dispatch in their chain (one query for all), each with
    whether it is an update with a later claimable one behind it (to be coalesced)."""
    connector_id = rows[0].connector_id
    chains: dict[int, list[tuple[int, str]]] = {}
    for appointment_id, pk, status in Dispatch.objects.filter(
        connector_id=connector_id, appointment_id__in={d.appointment_id for d in rows},
        status__in=OPEN_STATUSES,
    ).values_list("appointment_id", "pk", "status"):
        chains.setdefault(appointment_id, []).append((pk, status))
    firsts = []
    for dispatch in rows:
        chain = chains.get(dispatch.appointment_id, [])
        if any(pk < dispatch.pk for pk, _ in chain):
            continue
        later = dispatch.action == "update" and any(
            pk > dispatch.pk and status in CLAIMABLE for pk, status in chain
        )
        firsts.append((dispatch, later))
    return firsts
