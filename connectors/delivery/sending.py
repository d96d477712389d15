"""Sending a claimed dispatch and recording the attempt: success, retry or failure."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from connectors.backoffices import registry
from connectors.backoffices.base import AppointmentChange, BackOfficeError, SendResult
from connectors.models import OPEN_STATUSES, Attempt, AttemptOutcome, Connector, Dispatch

from .claiming import claim
from .common import (
    CLAIMABLE,
    JITTER,
    SHORT_RETRY_MAX_S,
    THROTTLED_MIN_WAIT_S,
    S,
    finish,
    log,
    log_attempt,
    ring,
)
from .operations import connector_quarantine

BACKLOG_PAGE = 50  # chain heads read at a time by a backlog task
BACKLOG_SECONDS = 10.0  # a backlog task starts no attempt after this long, and rings again


def _change(dispatch: Dispatch) -> AppointmentChange:
    return AppointmentChange(
        action=dispatch.action,
        dispatch_id=dispatch.message_id,
        occurred_at=dispatch.event.occurred_at,
        appointment=dispatch.payload,
    )


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
        finish(dispatch, S.SUCCEEDED)
        log_attempt(dispatch, AttemptOutcome.SUCCEEDED, started_at=started_at,
             duration_ms=result.duration_ms, status_code=result.status_code,
             response_excerpt=result.response_excerpt,
             request=_request_dict(result), message="Delivered.")
        if dispatch.connector.failing_since is not None:  # as read by the claim
            Connector.objects.filter(pk=dispatch.connector_id).update(failing_since=None)


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
            finish(dispatch, S.FAILED)
            outcome = AttemptOutcome.FAILED
        else:
            dispatch.next_attempt_at = now + timedelta(seconds=delay)
            finish(dispatch, S.RETRYING)
            outcome = AttemptOutcome.RETRY
        message = error.message
        if delay is None and not error.permanent:
            message += f" Gave up after {dispatch.attempts} attempt(s) (the schedule is used up)."
        log_attempt(dispatch, outcome, started_at=started_at, duration_ms=duration_ms,
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
    """Send the dispatch if it can be claimed (waiting for short retries), then ring for the
    next one of its chain.

    Returns what happened to this dispatch ("skipped", "succeeded", "retrying", "failed",
    "cancelled"). Safe to call any number of times (tasks are delivered at least once).
    Dispatches are normally sent by `deliver_backlog`; this serves a single dispatch's task.
    """
    dispatch = claim(dispatch_id)
    if dispatch is None:
        return "skipped"
    return _deliver_claimed(dispatch)


def _deliver_claimed(dispatch: Dispatch) -> str:
    """Send a claimed dispatch (waiting for short retries), ring for the next one of its chain;
    returns its status."""
    delay = _send(dispatch)
    status: str | None = dispatch.status
    while delay is not None and delay <= SHORT_RETRY_MAX_S:
        time.sleep(delay)
        retried = claim(dispatch.pk)
        if retried is None:  # taken, cancelled or held meanwhile: ask the database
            status = None
            break
        dispatch = retried
        delay = _send(dispatch)
        status = dispatch.status
    if status is None:
        status = Dispatch.objects.filter(pk=dispatch.pk).values_list("status", flat=True)[0]
    if status not in OPEN_STATUSES and _next_in_chain_due(dispatch):
        ring([dispatch.connector_id])
    return str(status)


def _next_in_chain_due(dispatch: Dispatch) -> bool:
    return Dispatch.objects.filter(
        appointment_id=dispatch.appointment_id, connector_id=dispatch.connector_id,
        pk__gt=dispatch.pk, status__in=CLAIMABLE, next_attempt_at__lte=timezone.now(),
    ).exists()


def deliver_backlog(connector_id: int) -> int:
    """Send the connector's due chain heads, oldest first, a page at a time, until none is due
    or BACKLOG_SECONDS have passed; returns how many attempts were made.

    A failed dispatch does not stop the others (they belong to other chains); retries due
    within SHORT_RETRY_MAX_S are waited for here. When time is up with a dispatch due or a
    short retry pending, the task rings again, taking a new place in the queue behind other
    connectors' tasks. A second page as full as the first rings once for a helper, so another
    worker can share a long backlog. Every dispatch goes through `claim`, with all its checks
    (lock, due, first open one of its chain, quarantine, disabled, coalescing), so running
    this any number of times, also at once, sends nothing twice.
    """
    Connector.objects.filter(pk=connector_id).update(backlog_queued_at=None)
    deadline = time.monotonic() + BACKLOG_SECONDS
    attempts = pages = 0
    while True:
        heads = _chain_heads(connector_id)
        pages += 1
        if pages == 2 and len(heads) == BACKLOG_PAGE:
            ring([connector_id])
        claimed = 0
        for pk in heads:
            if time.monotonic() >= deadline:
                ring([connector_id])
                return attempts
            dispatch = claim(pk)
            if dispatch is not None:
                claimed += 1
                _send(dispatch)
        attempts += claimed
        if claimed:
            continue
        wait = _next_retry_in(connector_id)
        if wait is None:
            return attempts
        if time.monotonic() >= deadline:  # the successor, with time of its own, waits
            ring([connector_id])
            return attempts
        # Waited for even past the deadline: a successor rung instead would find nothing due
        # and ring its own at once, a busy loop until the retry is due.
        time.sleep(wait)


def _chain_heads(connector_id: int) -> list[int]:
    """Up to BACKLOG_PAGE due dispatches of the connector, oldest first, with no earlier open
    one in their chain (the sweeper's query, for one connector); none while it is quarantined."""
    earlier_open = Dispatch.objects.filter(
        appointment_id=OuterRef("appointment_id"), connector_id=OuterRef("connector_id"),
        pk__lt=OuterRef("pk"), status__in=OPEN_STATUSES,
    )
    return list(
        Dispatch.objects.filter(connector_id=connector_id, status__in=CLAIMABLE,
                                next_attempt_at__lte=timezone.now(),
                                connector__quarantined_at__isnull=True)
        .exclude(Exists(earlier_open))
        .order_by("pk")
        .values_list("pk", flat=True)[:BACKLOG_PAGE]
    )


def _next_retry_in(connector_id: int) -> float | None:
    """Seconds until the connector's next retry, if one is due within SHORT_RETRY_MAX_S."""
    now = timezone.now()
    soonest = (
        Dispatch.objects.filter(connector_id=connector_id, status=S.RETRYING,
                                next_attempt_at__gt=now,
                                next_attempt_at__lte=now + timedelta(seconds=SHORT_RETRY_MAX_S))
        .order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
    )
    return None if soonest is None else max(0.0, (soonest - now).total_seconds())
