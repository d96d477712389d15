"""Sending a claimed dispatch and recording the attempt: success, retry or failure."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from connectors.backoffices import registry
from connectors.backoffices.base import AppointmentChange, BackOfficeError, SendResult
from connectors.models import OPEN_STATUSES, Attempt, AttemptOutcome, Connector, Dispatch
from connectors.rows import per_row

from .claiming import Page, claim, claim_page
from .common import (
    CLAIMABLE,
    JITTER,
    SHORT_RETRY_MAX_S,
    THROTTLED_MIN_WAIT_S,
    S,
    chain_heads,
    finish,
    log,
    log_attempt,
    ring,
)
from .operations import connector_quarantine

BACKLOG_PAGE = 50  # chain heads read at a time by a backlog task
BACKLOG_SECONDS = 10.0  # a backlog task starts no attempt after this long, and rings again
RECORD_EVERY_S = 0.5  # a page's successes are written at least this often


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


@dataclass
class _Success:
    dispatch: Dispatch
    result: SendResult
    started_at: datetime
    delivered_at: datetime


def _record_successes(successes: Sequence[_Success]) -> None:
    """Close the dispatches (of one connector) as succeeded and log their attempts, in one
    transaction of a few statements whatever their number (the rows are ours: under our
    claim's lease)."""
    if not successes:
        return
    ids = [success.dispatch.pk for success in successes]
    now = timezone.now()
    connector = successes[0].dispatch.connector
    with transaction.atomic():
        logged = dict(Attempt.objects.filter(dispatch_id__in=ids).values("dispatch_id")
                      .annotate(n=Count("pk")).values_list("dispatch_id", "n"))
        Dispatch.objects.filter(pk__in=ids).update(
            status=S.SUCCEEDED, lease_until=None, lease_owner="", next_attempt_at=None,
            last_error="", last_hint="", updated_at=now,
            delivered_at=per_row(Dispatch, "delivered_at",
                                 {s.dispatch.pk: s.delivered_at for s in successes}),
            last_status_code=per_row(Dispatch, "last_status_code",
                                     {s.dispatch.pk: s.result.status_code for s in successes}),
        )
        Attempt.objects.bulk_create(
            Attempt(dispatch=s.dispatch, connector_id=s.dispatch.connector_id,
                    number=logged.get(s.dispatch.pk, 0) + 1, started_at=s.started_at,
                    outcome=AttemptOutcome.SUCCEEDED, duration_ms=s.result.duration_ms,
                    status_code=s.result.status_code, response_excerpt=s.result.response_excerpt,
                    request=_request_dict(s.result), message="Delivered.")
            for s in successes
        )
        if connector.failing_since is not None:  # as read by the claim, or set since
            Connector.objects.filter(pk=connector.pk).update(failing_since=None)
            connector.failing_since = None
    for success in successes:
        dispatch = success.dispatch
        dispatch.status = S.SUCCEEDED
        dispatch.delivered_at = success.delivered_at
        dispatch.last_status_code = success.result.status_code
        dispatch.last_error = dispatch.last_hint = ""
        dispatch.lease_until = dispatch.next_attempt_at = None
        dispatch.lease_owner = ""
        dispatch.updated_at = now


class _Successes:
    """A page's successful attempts, written together (`_record_successes`) at least every
    RECORD_EVERY_S, before a failure is recorded, and when the page ends. Until written they
    are in flight: a worker killed meanwhile sends them again after the lease."""

    def __init__(self) -> None:
        self.items: list[_Success] = []
        self.since = 0.0

    def add(self, success: _Success) -> None:
        if not self.items:
            self.since = time.monotonic()
        self.items.append(success)
        if time.monotonic() - self.since >= RECORD_EVERY_S:
            self.write()

    def write(self) -> None:
        items, self.items = self.items, []
        _record_successes(items)


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
    if updated:  # also on the page's connector, so that its next success clears it
        connector.failing_since = failed_at
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


def _send(dispatch: Dispatch, successes: _Successes | None = None) -> float | None:
    """One attempt; returns the delay when a retry was scheduled. A success is recorded at
    once, or added to `successes` to be written with others."""
    started_at = timezone.now()
    started = time.monotonic()
    try:
        result = registry.client_for(dispatch.connector).send(_change(dispatch))
    except BackOfficeError as error:
        return _record_send_failure(dispatch, error, started_at, started, successes)
    except Exception as exc:  # a bug of ours: retried, and logged without the payload
        log.exception("Dispatch %s: unexpected %s", dispatch.pk, type(exc).__name__)
        internal = BackOfficeError(
            f"DimeConnect failed while sending ({type(exc).__name__}).", permanent=False,
            hint="An internal error; it is retried. Report it with this dispatch's id.",
            error_class="InternalError",
        )
        return _record_send_failure(dispatch, internal, started_at, started, successes)
    if not result.duration_ms:
        result.duration_ms = _elapsed_ms(started)
    success = _Success(dispatch, result, started_at, timezone.now())
    if successes is None:
        _record_successes([success])
    else:
        successes.add(success)
    return None


def _record_send_failure(dispatch: Dispatch, error: BackOfficeError, started_at: datetime,
                         started: float, successes: _Successes | None) -> float | None:
    duration_ms = _elapsed_ms(started)
    if successes is not None:  # in their order: a success then a failure leaves it failing
        successes.write()
    return _record_failure(dispatch, error, started_at, duration_ms)


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
    worker can share a long backlog. A page is claimed at once (`claim_page`, with all of
    `claim`'s checks: lock, due, first open one of its chain, quarantine, disabled,
    coalescing), so running this any number of times, also at once, sends nothing twice; what
    a page holds when time is up is given back.
    """
    Connector.objects.filter(pk=connector_id).update(backlog_queued_at=None)
    deadline = time.monotonic() + BACKLOG_SECONDS
    attempts = pages = 0
    while True:
        if time.monotonic() >= deadline and _has_due(connector_id):
            ring([connector_id])
            return attempts
        page = claim_page(connector_id, BACKLOG_PAGE)
        if page is not None:
            pages += 1
            if pages == 2 and len(page.dispatches) == BACKLOG_PAGE:
                ring([connector_id])
            attempts += _send_page(page, deadline)
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


def _send_page(page: Page, deadline: float) -> int:
    """Send the page's dispatches in order until the deadline, renewing their lease as
    needed; those left are given back. Returns how many were attempted."""
    remaining = page.dispatches
    attempted = 0
    successes = _Successes()
    try:
        while remaining:
            if time.monotonic() >= deadline:
                page.release(remaining)
                break
            remaining = page.keep(remaining)
            if remaining:
                _send(remaining[0], successes)
                attempted += 1
                remaining = remaining[1:]
    finally:
        successes.write()
    return attempted


def _has_due(connector_id: int) -> bool:
    return chain_heads(timezone.now()).filter(connector_id=connector_id).exists()


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
