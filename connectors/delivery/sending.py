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
    enqueue,
    finish,
    log,
    log_attempt,
)
from .operations import connector_quarantine

DRAIN_MAX = 20  # after its own dispatch, a task sends at most this many more of its connector
DRAIN_SECONDS = 2.0  # ... and starts none after this long (from the task's start)


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
    """Send the dispatch if it can be claimed; then queue the next one of its chain, and, when
    it succeeded, drain its connector's backlog for a while (`_drain`).

    Returns what happened to this dispatch ("skipped", "succeeded", "retrying", "failed",
    "cancelled"). Safe to call any number of times (tasks are delivered at least once).
    """
    started = time.monotonic()
    dispatch = claim(dispatch_id)
    if dispatch is None:
        return "skipped"
    status = _deliver_claimed(dispatch)
    if status == S.SUCCEEDED:
        _drain(dispatch.connector_id, started + DRAIN_SECONDS)
    return status


def _deliver_claimed(dispatch: Dispatch) -> str:
    """Send a claimed dispatch (waiting for short retries), queue the next one of its chain;
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
    _queue_next(dispatch, status)
    return str(status)


def _drain(connector_id: int, deadline: float) -> int:
    """Send due chain heads of the connector (oldest first) until DRAIN_MAX were sent, the
    deadline passed, one did not succeed, or none is left; returns how many were sent.

    Each goes through `claim`, with every check a task of its own makes (lock, due, first open
    one of its chain, quarantine, disabled, coalescing), so this only saves task round trips:
    their own tasks, still queued, find them sent and skip them.
    """
    sent = 0
    tried: set[int] = set()
    while sent < DRAIN_MAX and time.monotonic() < deadline:
        heads = [pk for pk in _chain_heads(connector_id) if pk not in tried]
        if not heads:
            break
        for pk in heads:
            if sent >= DRAIN_MAX or time.monotonic() >= deadline:
                break
            tried.add(pk)
            dispatch = claim(pk)
            if dispatch is None:  # another worker has it, or it is no longer due or first
                continue
            sent += 1
            if _deliver_claimed(dispatch) != S.SUCCEEDED:
                return sent
    return sent


def _chain_heads(connector_id: int) -> list[int]:
    """Up to DRAIN_MAX due dispatches of the connector with no earlier open one in their chain
    (the sweeper's query, for one connector)."""
    earlier_open = Dispatch.objects.filter(
        appointment_id=OuterRef("appointment_id"), connector_id=OuterRef("connector_id"),
        pk__lt=OuterRef("pk"), status__in=OPEN_STATUSES,
    )
    return list(
        Dispatch.objects.filter(connector_id=connector_id, status__in=CLAIMABLE,
                                next_attempt_at__lte=timezone.now())
        .exclude(Exists(earlier_open))
        .order_by("pk")
        .values_list("pk", flat=True)[:DRAIN_MAX]
    )


def _queue_next(dispatch: Dispatch, status: str) -> None:
    """Queue the next due dispatch of the chain once this one is closed (`status`)."""
    if status in OPEN_STATUSES:
        return
    following = (
        Dispatch.objects.filter(
            appointment_id=dispatch.appointment_id, connector_id=dispatch.connector_id,
            pk__gt=dispatch.pk, status__in=CLAIMABLE, next_attempt_at__lte=timezone.now(),
        ).order_by("pk").values_list("pk", flat=True).first()
    )
    if following is not None:
        enqueue([following])
