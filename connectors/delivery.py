"""Delivering dispatches: claim, send, record, retry, order, coalesce, quarantine, sweep.

A dispatch is sent by whoever claims it: a django-q2 task queued after commit, or the sweeper
(every minute) for dispatches whose message was lost, whose retry is due, or whose worker died
(its lease expired). Claiming locks the row (`select_for_update(skip_locked=True)` on
PostgreSQL; SQLite's IMMEDIATE transactions serialise writers), so no two workers send one
dispatch at once. Delivery is at least once: a worker killed after sending but before recording
sends again after the lease; receivers drop duplicates by the stable dispatch id.

Order: a dispatch is sent only when no earlier dispatch of the same appointment to the same
connector is still open, so a create is never overtaken by its update or delete. An update with
newer updates queued behind it is coalesced into the newest (only the newest state is sent).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from .backoffices import http, registry
from .backoffices.base import AppointmentChange, BackOfficeError, SendResult
from .models import (
    OPEN_STATUSES,
    Attempt,
    AttemptOutcome,
    Connector,
    Dispatch,
    DispatchStatus,
)

log = logging.getLogger(__name__)

S = DispatchStatus
CLAIMABLE = (S.PENDING, S.RETRYING)
JITTER = 0.2  # ±20 % on every scheduled delay
THROTTLED_MIN_WAIT_S = 60  # after a 429 or a timeout, wait at least this long
SHORT_RETRY_MAX_S = 15  # retries due within this are waited for in the task itself
SWEEP_BATCH = 1000


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_seconds(connector: Connector) -> float:
    """How long a claim holds: a WSDL load, a token fetch and the send, plus a margin."""
    return 3 * http.total_timeout(connector) + 30


# --- Queueing -----------------------------------------------------------------------------


def enqueue(dispatch_ids: Iterable[int]) -> None:
    """Ring the broker's doorbell for each dispatch. A failure is only logged: the dispatch is
    in the database, and the sweeper sends it within a minute."""
    from django_q.tasks import async_task

    for dispatch_id in dispatch_ids:
        try:
            async_task("connectors.tasks.deliver_dispatch", dispatch_id,
                       task_name=f"deliver dispatch {dispatch_id}", group="dispatch")
        except Exception as exc:  # the broker being down must not fail the request
            log.warning("Could not queue dispatch %s (%s); the sweeper will send it.",
                        dispatch_id, type(exc).__name__)


def _locking(queryset: QuerySet[Dispatch]) -> QuerySet[Dispatch]:
    if connection.features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True, of=("self",))
    return queryset.select_for_update()


def _open_before(dispatch: Dispatch) -> bool:
    return Dispatch.objects.filter(
        appointment_id=dispatch.appointment_id, connector_id=dispatch.connector_id,
        pk__lt=dispatch.pk, status__in=OPEN_STATUSES,
    ).exists()


def _log(dispatch: Dispatch, outcome: str, *, message: str = "", hint: str = "",
         user: str = "", **fields: Any) -> Attempt:
    number = Attempt.objects.filter(dispatch=dispatch).count() + 1
    return Attempt.objects.create(
        dispatch=dispatch, connector_id=dispatch.connector_id, number=number,
        started_at=fields.pop("started_at", timezone.now()),
        outcome=outcome, message=message, hint=hint, user=user, **fields,
    )


# --- Claiming -----------------------------------------------------------------------------


def _coalesce(dispatch: Dispatch, now: datetime) -> Dispatch:
    """If newer updates wait behind this update, cancel it (and all but the newest of them)
    and return the newest, due now; else return the dispatch itself."""
    if dispatch.action != "update":
        return dispatch
    waiting = Dispatch.objects.filter(
        appointment_id=dispatch.appointment_id, connector_id=dispatch.connector_id,
        pk__gt=dispatch.pk, status__in=CLAIMABLE,
    ).order_by("pk")
    later = list(_locking(waiting))
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
        _log(superseded, AttemptOutcome.COALESCED,
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
        dispatch = _locking(Dispatch.objects.filter(pk=dispatch_id)).first()
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
            _finish(dispatch, S.CANCELLED)
            _log(dispatch, AttemptOutcome.CANCELLED,
                 message="Cancelled: the connector was disabled before this was sent.")
            return None
        if _open_before(dispatch):
            return None
        dispatch = _coalesce(dispatch, now)
        dispatch.status = S.SENDING
        dispatch.attempts += 1
        dispatch.lease_until = now + timedelta(seconds=lease_seconds(connector))
        dispatch.lease_owner = _owner()
        dispatch.save(update_fields=["status", "attempts", "lease_until", "lease_owner",
                                     "next_attempt_at", "updated_at"])
        dispatch.connector = connector
        return dispatch


# --- Sending and recording -----------------------------------------------------------------


def _change(dispatch: Dispatch) -> AppointmentChange:
    return AppointmentChange(
        action=dispatch.action,
        dispatch_id=dispatch.message_id,
        occurred_at=dispatch.event.occurred_at,
        appointment=dispatch.payload,
    )


def _finish(dispatch: Dispatch, status: str) -> None:
    dispatch.status = status
    dispatch.lease_until = None
    dispatch.lease_owner = ""
    if status != S.RETRYING:
        dispatch.next_attempt_at = None
    dispatch.save(update_fields=["status", "lease_until", "lease_owner", "next_attempt_at",
                                 "last_error", "last_hint", "last_status_code", "delivered_at",
                                 "updated_at"])


def retry_delay(dispatch: Dispatch, error: BackOfficeError) -> float | None:
    """Seconds until the next attempt, or None when the schedule is exhausted.

    The schedule step after attempt n is delays[n] (delays[0] is the first attempt's
    "immediately"), ±20 % jitter; a Retry-After asking for longer wins; after a 429 or a
    timeout at least 60 s.
    """
    delays = dispatch.connector.retry_delays()
    if dispatch.attempts >= len(delays):
        return None
    delay = delays[dispatch.attempts] * random.uniform(1 - JITTER, 1 + JITTER)
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    if error.status_code == 429 or error.error_class == "Timeout":
        delay = max(delay, THROTTLED_MIN_WAIT_S)
    return delay


def _record_success(dispatch: Dispatch, result: SendResult, started_at: datetime) -> None:
    with transaction.atomic():
        dispatch.delivered_at = timezone.now()
        dispatch.last_error = dispatch.last_hint = ""
        dispatch.last_status_code = result.status_code
        _finish(dispatch, S.SUCCEEDED)
        _log(dispatch, AttemptOutcome.SUCCEEDED, started_at=started_at,
             duration_ms=result.duration_ms, status_code=result.status_code,
             response_excerpt=result.response_excerpt,
             request=_request_dict(result), message="Delivered.")
        Connector.objects.filter(pk=dispatch.connector_id, failing_since__isnull=False).update(
            failing_since=None
        )


def _request_dict(result: SendResult | BackOfficeError) -> dict[str, Any]:
    if result.request is None:
        return {}
    record = result.request
    return {"method": record.method, "url": record.url, "headers": record.headers,
            "body": record.body}


def _record_failure(dispatch: Dispatch, error: BackOfficeError, started_at: datetime,
                    duration_ms: int) -> float | None:
    """Log the failed attempt and decide what comes next; returns the delay when it retries."""
    delay = None if error.permanent else retry_delay(dispatch, error)
    now = timezone.now()
    with transaction.atomic():
        dispatch.last_error = error.message
        dispatch.last_hint = error.hint
        dispatch.last_status_code = error.status_code
        if delay is None:
            dispatch.delivered_at = None
            _finish(dispatch, S.FAILED)
            outcome = AttemptOutcome.FAILED
        else:
            dispatch.next_attempt_at = now + timedelta(seconds=delay)
            _finish(dispatch, S.RETRYING)
            outcome = AttemptOutcome.RETRY
        message = error.message
        if delay is None and not error.permanent:
            message += f" Gave up after {dispatch.attempts} attempt(s) (the schedule is used up)."
        _log(dispatch, outcome, started_at=started_at, duration_ms=duration_ms,
             status_code=error.status_code, response_excerpt=error.response_excerpt,
             request=_request_dict(error),
             error_class=error.error_class[:100], message=message, hint=error.hint)
        _note_connector_failure(dispatch.connector, started_at, now)
    return delay


def _note_connector_failure(connector: Connector, failed_at: datetime, now: datetime) -> None:
    """Track how long the connector has failed without a success (from the first failed
    attempt's start); quarantine it when that lasts longer than QUARANTINE_AFTER_HOURS with at
    least QUARANTINE_MIN_FAILURES failed attempts."""
    updated = Connector.objects.filter(pk=connector.pk, failing_since__isnull=True).update(
        failing_since=failed_at
    )
    if updated:
        return
    since = Connector.objects.filter(pk=connector.pk).values_list("failing_since", flat=True)[0]
    if since is None or now - since < timedelta(hours=settings.QUARANTINE_AFTER_HOURS):
        return
    failures = Attempt.objects.filter(
        dispatch__connector_id=connector.pk, started_at__gte=since,
        outcome__in=(AttemptOutcome.RETRY, AttemptOutcome.FAILED),
    ).count()
    if failures >= settings.QUARANTINE_MIN_FAILURES:
        connector_quarantine(
            connector,
            reason=f"Every delivery failed for {(now - since).days} day(s) "
            f"({failures} failed attempts since {since:%Y-%m-%d %H:%M} UTC).",
        )


def _send(dispatch: Dispatch) -> float | None:
    """One attempt; returns the delay when a retry was scheduled."""
    started_at = timezone.now()
    started = time.monotonic()
    try:
        result = registry.client_for(dispatch.connector).send(_change(dispatch))
    except BackOfficeError as error:
        return _record_failure(dispatch, error, started_at, _elapsed_ms(started))
    except Exception as exc:  # a bug of ours: retried, and logged without the payload
        log.exception("Dispatch %s: unexpected %s", dispatch.pk, type(exc).__name__)
        internal = BackOfficeError(
            f"DimeConnect failed while sending ({type(exc).__name__}).", permanent=False,
            hint="An internal error; it is retried. Report it with this dispatch's id.",
            error_class="InternalError",
        )
        return _record_failure(dispatch, internal, started_at, _elapsed_ms(started))
    if not result.duration_ms:
        result.duration_ms = _elapsed_ms(started)
    _record_success(dispatch, result, started_at)
    return None


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def deliver(dispatch_id: int) -> str:
    """Send the dispatch if it can be claimed; then queue the next one of its chain.

    Returns what happened ("skipped", "succeeded", "retrying", "failed", "cancelled"). Safe to
    call any number of times (tasks are delivered at least once).
    """
    dispatch = claim(dispatch_id)
    if dispatch is None:
        return "skipped"
    delay = _send(dispatch)
    while delay is not None and delay <= SHORT_RETRY_MAX_S:
        time.sleep(delay)
        retried = claim(dispatch.pk)
        if retried is None:
            break
        dispatch = retried
        delay = _send(dispatch)
    _queue_next(dispatch)
    return str(Dispatch.objects.filter(pk=dispatch.pk).values_list("status", flat=True)[0])


def _queue_next(dispatch: Dispatch) -> None:
    following = (
        Dispatch.objects.filter(
            appointment_id=dispatch.appointment_id, connector_id=dispatch.connector_id,
            pk__gt=dispatch.pk, status__in=CLAIMABLE, next_attempt_at__lte=timezone.now(),
        ).order_by("pk").values_list("pk", flat=True).first()
    )
    if following is not None and not Dispatch.objects.filter(
        pk=dispatch.pk, status__in=OPEN_STATUSES
    ).exists():
        enqueue([following])


# --- Sweeping -----------------------------------------------------------------------------


def sweep() -> int:
    """Reclaim dispatches whose worker died (lease expired) and queue every due chain head of
    a connector that is not quarantined; returns how many were queued."""
    now = timezone.now()
    with transaction.atomic():
        lost = list(_locking(Dispatch.objects.filter(status=S.SENDING, lease_until__lt=now)))
        for dispatch in lost:
            dispatch.status = S.RETRYING
            dispatch.next_attempt_at = now
            dispatch.lease_until = None
            dispatch.save(update_fields=["status", "next_attempt_at", "lease_until",
                                         "updated_at"])
            _log(dispatch, AttemptOutcome.LOST,
                 message=f"The worker ({dispatch.lease_owner or 'unknown'}) did not finish "
                 "this attempt; it is sent again (the receiver may see it twice).")
    earlier_open = Dispatch.objects.filter(
        appointment_id=OuterRef("appointment_id"), connector_id=OuterRef("connector_id"),
        pk__lt=OuterRef("pk"), status__in=OPEN_STATUSES,
    )
    due = list(
        Dispatch.objects.filter(status__in=CLAIMABLE, next_attempt_at__lte=now,
                                connector__quarantined_at__isnull=True)
        .exclude(Exists(earlier_open))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    enqueue(due)
    return len(due)


# --- Operator actions ---------------------------------------------------------------------


def _user_label(user: Any) -> str:
    return str(getattr(user, "get_username", lambda: "")() or "") if user else ""


def dispatches_retry(dispatch_ids: list[int], *, user: Any = None) -> int:
    """Make failed, cancelled or retrying dispatches due now, starting their retry schedule
    again, log who asked, and queue them; returns how many."""
    now = timezone.now()
    retried = []
    with transaction.atomic():
        for dispatch in _locking(Dispatch.objects.filter(
            pk__in=dispatch_ids, status__in=(S.FAILED, S.CANCELLED, S.RETRYING, S.PENDING)
        )):
            dispatch.status = S.PENDING
            dispatch.attempts = 0
            dispatch.next_attempt_at = now
            dispatch.save(update_fields=["status", "attempts", "next_attempt_at", "updated_at"])
            _log(dispatch, AttemptOutcome.REQUESTED, user=_user_label(user),
                 message=f"Retry requested by {_user_label(user) or 'an operator'}.")
            retried.append(dispatch.pk)
    transaction.on_commit(lambda: enqueue(retried))
    return len(retried)


def connector_quarantine(connector: Connector, *, reason: str) -> None:
    """Hold the connector's dispatches until someone resumes it (visible in the admin)."""
    Connector.objects.filter(pk=connector.pk, quarantined_at__isnull=True).update(
        quarantined_at=timezone.now(), quarantine_reason=reason
    )
    log.warning("Connector %s quarantined: %s", connector.pk, reason)


def connector_resume(connector: Connector, *, user: Any = None) -> int:
    """Lift the quarantine and make the held dispatches due now; returns how many."""
    now = timezone.now()
    with transaction.atomic():
        Connector.objects.filter(pk=connector.pk).update(
            quarantined_at=None, quarantine_reason="", failing_since=None
        )
        held = list(Dispatch.objects.filter(connector_id=connector.pk, status__in=CLAIMABLE)
                    .values_list("pk", flat=True))
        Dispatch.objects.filter(pk__in=held).update(next_attempt_at=now, attempts=0)
        for dispatch in Dispatch.objects.filter(pk__in=held[:1]):
            _log(dispatch, AttemptOutcome.REQUESTED, user=_user_label(user),
                 message=f"Connector resumed by {_user_label(user) or 'an operator'}; "
                 f"{len(held)} held dispatch(es) are due now.")
    if held:
        transaction.on_commit(sweep)  # queues each chain's head, in order
    return len(held)
