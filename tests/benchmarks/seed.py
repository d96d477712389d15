"""Seed a dedicated database with a realistic dispatch log, fast (bulk_create in batches).

    seed_dispatch_log(dispatches=100_000, attempts=300_000, days=14)

~20 connectors over 5 source apps (4 each; one quarantined, one disabled), appointments with
several events each, one dispatch per connector of the event's source app, and attempts whose
times follow the default retry schedule. The status mix is deterministic (seeded RNG):
about 89 % succeeded, 6.6 % failed, 4 % cancelled (coalesced), the rest open (pending, sending,
retrying; the quarantined connector's held dispatches are pending). Attempts are topped up or
trimmed to the exact number asked for. Every connector carries secrets (`SECRETS`), so a page under
test can be checked for their absence.

Never point this at a database you care about: it only adds rows, but lots of them.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from connectors import services
from connectors.models import (
    Appointment,
    AppointmentEvent,
    AppointmentResource,
    Attempt,
    Connector,
    Dispatch,
)

SOURCE_APPS = ("BCPROD", "BCTEST", "NAVNL", "HOOKS", "BCUK")
SCHEDULE_S = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
SECRETS = {
    "password": "bench-password-5f1c9e",
    "client_secret": "bench-client-secret-77ad02",
    "signing_secret": "whsec_" + "QmVuY2hTaWduaW5nU2VjcmV0MTIzNDU2Nzg5MA==",
}
ERRORS = (
    # (status code, error class, message, hint, permanent)
    (503, "HTTPStatusError", "The back office answered 503 Service Unavailable.",
     "The back office is down or overloaded; DimeConnect retries on its schedule.", False),
    (None, "Timeout", "No answer within 15 s.",
     "The back office is slow or unreachable; check the URI and its load.", False),
    (500, "SoapServerFault", "SOAP Server fault: Deadlock on table Appointment.",
     "A transient server error; it is retried.", False),
    (401, "HTTPStatusError", "The back office answered 401 Unauthorized.",
     "The login or password is wrong, or the account lacks permission.", True),
    (400, "HTTPStatusError", "The back office answered 400 Bad Request: Job No. J-1 not found.",
     "The back office refused the data; check that the job exists there.", True),
)
BATCH = 2000


@dataclass
class SeedResult:
    connectors: list[Connector]
    dispatches: int = 0
    attempts: int = 0
    sample: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _keep_given_times() -> Iterator[None]:
    """bulk_create would stamp auto_now(_add) fields with now(); keep the seeded times."""
    fields = [
        f for model in (Appointment, AppointmentEvent, Dispatch) for f in model._meta.fields
        if isinstance(f, models.DateTimeField) and (f.auto_now or f.auto_now_add)
    ]
    saved = [(f, f.auto_now, f.auto_now_add) for f in fields]
    for f in fields:
        f.auto_now = f.auto_now_add = False
    try:
        yield
    finally:
        for f, auto_now, auto_now_add in saved:
            f.auto_now, f.auto_now_add = auto_now, auto_now_add


def make_connectors(now: datetime, count: int = 20) -> list[Connector]:
    kinds = (
        {"type": "webhook", "api_type": "rest", "auth_type": "basic", "login": "hook"},
        {"type": "bc_online", "api_type": "rest", "auth_type": "entra_id",
         "tenant_id": "contoso.onmicrosoft.com", "client_id": "c0ffee"},
        {"type": "nav", "api_type": "soap", "auth_type": "basic", "login": "nav"},
        {"type": "bc_onprem", "api_type": "soap", "auth_type": "ntlm", "login": "DOMAIN\\svc"},
    )
    connectors = []
    for n in range(count):
        kind = kinds[n % len(kinds)]
        connector = services.connector_save(Connector(
            name=f"{SOURCE_APPS[n % len(SOURCE_APPS)]} {kind['type']} {n:02d}",
            uri=f"https://backoffice-{n}.example.test/api", source_app=SOURCE_APPS[
                n % len(SOURCE_APPS)], enabled=n != 17,
            password=SECRETS["password"], client_secret=SECRETS["client_secret"],
            signing_secret=SECRETS["signing_secret"] if kind["type"] == "webhook" else "",
            **kind,
        ))
        connectors.append(connector)
    quarantine = {
        "failing_since": now - timedelta(days=6), "quarantined_at": now - timedelta(days=1),
        "quarantine_reason": "Every delivery failed for 5 day(s) (212 failed attempts).",
    }
    Connector.objects.filter(pk=connectors[5].pk).update(**quarantine)
    for name, value in quarantine.items():
        setattr(connectors[5], name, value)
    return connectors


def _appointment(rng: random.Random, n: int, app: str, when: datetime) -> Appointment:
    guid = uuid.UUID(int=rng.getrandbits(128), version=4)
    data = {
        "guid": str(guid), "appointment_id": n, "appointment_no": f"A-{n:06d}",
        "source_app": app, "source_type": "SERVICE", "job_no": f"J-{n // 3:06d}",
        "task_no": f"T-{n % 7 + 1}", "resources": [{"resource_no": f"R{n % 40}",
                                                    "email": f"r{n % 40}@example.test"}],
        "subject": "Boiler service at Main Street 12", "body": "Bring the spare valve.",
        "start": "2026-11-21T09:00:00Z", "end": "2026-11-21T11:00:00Z",
        "is_all_day": False, "category": "SERVICE", "importance": 1,
        "planning_uom": "HOUR", "planning_qty": "2", "field_values": {},
    }
    return Appointment(
        guid=guid, source_app=app, source_type="SERVICE", appointment_id=n,
        appointment_no=data["appointment_no"], job_no=data["job_no"], task_no=data["task_no"],
        data=data, state_at=when, created_at=when, updated_at=when,
    )


def _status(rng: random.Random, connector: Connector, created: datetime, now: datetime,
            fail_rate: float) -> str:
    if connector.quarantined_at and created > now - timedelta(days=6):
        # Failing for five days, then quarantined: what came in since waits, unsent.
        return "pending" if created > connector.quarantined_at else "failed"
    age = now - created
    if age < timedelta(minutes=2):
        return rng.choice(("pending", "pending", "sending", "succeeded"))
    roll = rng.random()
    if roll < fail_rate:
        return "retrying" if age < timedelta(hours=10) and rng.random() < 0.5 else "failed"
    if roll < fail_rate + 0.04:
        return "cancelled"
    return "succeeded"


def _attempt_count(rng: random.Random, status: str) -> int:
    if status == "pending":
        return 0
    if status in ("sending", "cancelled"):
        return 1
    if status == "retrying":
        return rng.randint(1, 5)
    if status == "failed":
        return 1 if rng.random() < 0.4 else len(SCHEDULE_S)
    roll = rng.random()  # succeeded
    return 1 if roll < 0.45 else 2 if roll < 0.65 else 3 if roll < 0.75 else rng.randint(4, 8)


def _plan_attempts(rng: random.Random, statuses: list[str], total: int) -> list[int]:
    """Attempts per dispatch, adjusted to exactly `total` (extra retries before a success)."""
    counts = [_attempt_count(rng, status) for status in statuses]
    succeeded = [i for i, status in enumerate(statuses) if status == "succeeded"]
    diff = total - sum(counts)
    while diff and succeeded:
        i = rng.choice(succeeded)
        if diff > 0:
            counts[i] += 1
            diff -= 1
        elif counts[i] > 1:
            counts[i] -= 1
            diff += 1
    return counts


def _attempt(dispatch: Dispatch, number: int, at: datetime, outcome: str, duration: int,
             error: tuple[Any, ...]) -> Attempt:
    code, error_class, message, hint, _ = error
    ok = outcome in ("succeeded", "coalesced", "lost")
    return Attempt(
        dispatch=dispatch, connector=dispatch.connector, number=number, started_at=at,
        duration_ms=duration, outcome=outcome,
        status_code=200 if outcome == "succeeded" else None if ok else code,
        error_class="" if ok else error_class, message="Delivered." if ok else message,
        hint="" if ok else hint,
        response_excerpt='{"status": "ok"}' if ok else f"<html><body>{message}</body></html>",
        request={"method": "POST", "url": dispatch.connector.uri,
                 "headers": {"content-type": "application/json", "authorization": "[redacted]"}},
    )


def _attempts_for(rng: random.Random, dispatch: Dispatch, count: int, now: datetime,
                  error: tuple[Any, ...]) -> list[Attempt]:
    """`count` attempts on the retry schedule (±20 %), squeezed into the time the dispatch has
    had (until now, or until its connector was quarantined)."""
    until = min(now, dispatch.connector.quarantined_at or now)
    waits = [SCHEDULE_S[min(n, len(SCHEDULE_S) - 1)] * rng.uniform(0.8, 1.2)
             for n in range(1, count)]
    room = (until - dispatch.created_at).total_seconds() - 1
    scale = min(1.0, max(room, 0) / (sum(waits) + count)) if waits else 1.0
    final = {"succeeded": "succeeded", "failed": "failed", "cancelled": "coalesced",
             "sending": "lost"}.get(dispatch.status, "retry")
    attempts, at = [], dispatch.created_at + timedelta(milliseconds=rng.randint(20, 400))
    for number in range(1, count + 1):
        outcome = final if number == count else "retry"
        duration = rng.randint(60, 900) if outcome != "retry" or error[0] else 15000
        attempts.append(_attempt(dispatch, number, at, outcome, duration, error))
        if number < count:
            at += timedelta(seconds=(waits[number - 1] + 1) * scale)
    if dispatch.status == "succeeded":
        last = attempts[-1]
        dispatch.delivered_at = min(now, last.started_at + timedelta(milliseconds=last.duration_ms))
    if attempts:
        dispatch.updated_at = max(dispatch.created_at, attempts[-1].started_at)
    return attempts


@dataclass
class _Event:
    at: datetime
    app: str
    appointment: int
    action: str
    targets: list[Connector]


def _plan_events(rng: random.Random, connectors: list[Connector], dispatches: int,
                 days: float, now: datetime) -> tuple[list[_Event], dict[int, str]]:
    """Events in time order, each with the connectors it is dispatched to (`dispatches` in all),
    and the source app of each appointment index."""
    by_app = {app: [c for c in connectors if c.source_app == app] for app in SOURCE_APPS}
    per_event = sum(len(v) for v in by_app.values()) / len(SOURCE_APPS)
    start = now - timedelta(days=days)
    span = (now - start).total_seconds() - 1
    times = sorted(rng.uniform(0, span) for _ in range(int(dispatches / per_event * 1.1) + 10))
    apps: dict[int, str] = {}
    open_by_app: dict[str, list[int]] = {app: [] for app in SOURCE_APPS}
    events: list[_Event] = []
    left = dispatches
    for offset in times:
        if left <= 0:
            break
        at = start + timedelta(seconds=offset)
        app = rng.choice(SOURCE_APPS)
        known = open_by_app[app]
        if not known or rng.random() < 0.35:
            index = len(apps)
            apps[index] = app
            known.append(index)
            action = "create"
        else:
            index = known[-rng.randint(1, min(len(known), 300))]  # recent ones change most
            action = "delete" if rng.random() < 0.05 else "update"
        late = at > now - timedelta(days=3)
        targets = [c for c in by_app[app] if c.enabled or not late][:left]
        left -= len(targets)
        events.append(_Event(at, app, index, action, targets))
    stretch = span / max((events[-1].at - start).total_seconds(), 1)
    for event in events:  # the estimate left time unused at the end: spread over all of it
        event.at = start + (event.at - start) * stretch
    return events, apps


def _create_appointments(rng: random.Random, events: list[_Event],
                         apps: dict[int, str]) -> dict[int, Appointment]:
    first: dict[int, datetime] = {}
    last: dict[int, datetime] = {}
    for event in events:
        first.setdefault(event.appointment, event.at)
        last[event.appointment] = event.at
    rows = []
    for index in sorted(first):
        row = _appointment(rng, index + 1, apps[index], first[index])
        row.updated_at = row.state_at = last[index]
        rows.append(row)
    Appointment.objects.bulk_create(rows, batch_size=BATCH)
    AppointmentResource.objects.bulk_create(
        [AppointmentResource(appointment=row, resource_no=resource["resource_no"])
         for row in rows for resource in row.data["resources"]], batch_size=BATCH)
    return {index: row for index, row in zip(sorted(first), rows, strict=True)}


def _dispatch(rng: random.Random, event: _Event, row: AppointmentEvent, connector: Connector,
              status: str, now: datetime) -> tuple[Dispatch, tuple[Any, ...]]:
    error = rng.choice(ERRORS[:3] if status != "failed" or rng.random() < 0.6 else ERRORS[3:])
    created = event.at + timedelta(milliseconds=rng.randint(1, 50))
    dispatch = Dispatch(
        event=row, appointment=row.appointment, connector=connector, action=event.action,
        payload=row.payload, status=status, created_at=created, updated_at=created,
        next_attempt_at=created if status == "pending" else (
            now + timedelta(minutes=rng.randint(1, 300)) if status == "retrying" else None),
    )
    if status in ("failed", "retrying"):
        dispatch.last_status_code, _, dispatch.last_error, dispatch.last_hint, _ = error
    return dispatch, error


def seed_dispatch_log(*, dispatches: int = 100_000, attempts: int = 300_000,
                      connectors: int = 20, days: float = 14.0, seed: int = 7,
                      now: datetime | None = None) -> SeedResult:
    """Fill the (empty, migrated) default database; returns the connectors and a sample of
    business keys to search for (`job_no`, `guid`, `event_id`, `dispatch_id`)."""
    rng = random.Random(seed)
    now = now or timezone.now()
    with _keep_given_times(), transaction.atomic():
        result = SeedResult(connectors=make_connectors(now, connectors))
        fail_rate = {c.pk: rng.uniform(0.01, 0.12) for c in result.connectors}
        events, apps = _plan_events(rng, result.connectors, dispatches, days, now)
        appointments = _create_appointments(rng, events, apps)
        statuses = [_status(rng, c, e.at, now, fail_rate[c.pk]) for e in events
                    for c in e.targets]
        plan = iter(_plan_attempts(rng, statuses, attempts))
        status_of = iter(statuses)
        for start in range(0, len(events), BATCH // 4):
            chunk = events[start:start + BATCH // 4]
            rows = [AppointmentEvent(
                event_id=f"ev-{start + i:07d}", action=e.action, occurred_at=e.at,
                received_at=e.at, appointment=appointments[e.appointment],
                payload=appointments[e.appointment].data, dispatch_count=len(e.targets),
            ) for i, e in enumerate(chunk)]
            AppointmentEvent.objects.bulk_create(rows, batch_size=BATCH)
            batch, logs = [], []
            for event, row in zip(chunk, rows, strict=True):
                for connector in event.targets:
                    dispatch, error = _dispatch(rng, event, row, connector, next(status_of), now)
                    logs += _attempts_for(rng, dispatch, next(plan), now, error)
                    batch.append(dispatch)
            Dispatch.objects.bulk_create(batch, batch_size=BATCH)
            Attempt.objects.bulk_create(logs, batch_size=BATCH)
            result.dispatches += len(batch)
            result.attempts += len(logs)
        sample = Dispatch.objects.select_related("appointment", "event").order_by("pk")[
            result.dispatches // 2]
        result.sample = {"job_no": sample.appointment.job_no,
                         "guid": str(sample.appointment.guid),
                         "event_id": sample.event.event_id, "dispatch_id": sample.pk}
    return result
