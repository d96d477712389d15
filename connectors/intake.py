"""Accepting appointment events: the outbox write (DESIGN.md, Write-back).

For each event, in one transaction: upsert the appointment (locked, so events of one
appointment are serialised), store the event, and create one Dispatch per enabled connector of
its source app (and source type, when the connector names one) whose CRUD types include the
action. After commit each dispatch is queued; the sweeper finds any whose message was lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from exchange_sync.outbound import queue as exchange_queue

from .models import (
    ApiClient,
    Appointment,
    AppointmentEvent,
    AppointmentResource,
    Dispatch,
)
from .rows import JsonTexts, insert_rows, update_rows
from .sql import first_column, placeholders


@dataclass(frozen=True)
class IncomingEvent:
    """A validated event. `appointment` has the event API's keys; `guid` is its identity."""

    event_id: str
    action: str  # create | update | delete
    occurred_at: datetime
    appointment: dict[str, Any]
    source: str = "api"  # api | dimescheduler | exchange


@dataclass
class EventOutcome:
    event_id: str
    status: str  # accepted | duplicate
    stale: bool = False
    appointment_guid: str = ""
    connector_ids: list[int] = field(default_factory=list)  # one dispatch to each
    dispatch_ids: list[int] = field(default_factory=list)  # in the order of connector_ids
    exchange_queued: bool = False  # the appointment's Outlook events need a push

    @property
    def dispatches(self) -> int:
        return len(self.connector_ids)

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "status": self.status,
            "dispatches": self.dispatches,
            "stale": self.stale,
            "appointment_guid": self.appointment_guid,
        }


def matching_connectors(source_app: str, source_type: str, action: str) -> list[int]:
    """The ids of the enabled connectors of the source app (and source type) whose CRUD types
    include the action. Quarantined connectors match too: their dispatches wait for "resume".
    Ids only: matching never reads (and so never decrypts) a connector's secrets."""
    # Connector.objects.filter(enabled=True, source_app=source_app)
    #   .filter(Q(source_type="") | Q(source_type=source_type))
    #   .filter(crud_types__contains=action).order_by("pk"), as SQL (connectors/sql.py).
    return first_column(
        "SELECT id FROM connectors_connector WHERE enabled AND source_app = %s"
        " AND (source_type = '' OR source_type = %s) AND crud_types LIKE %s ORDER BY id",
        [source_app, source_type, f"%{action}%"],  # codes are words, none inside another
    )


def _appointment_fields(data: dict[str, Any], occurred_at: datetime, action: str) -> dict[str, Any]:
    return {
        "source_app": data.get("source_app", ""),
        "source_type": data.get("source_type") or "",
        "appointment_id": data.get("appointment_id"),
        "appointment_no": data.get("appointment_no") or "",
        "job_no": data.get("job_no") or "",
        "task_no": data.get("task_no") or "",
        "data": data,
        "state_at": occurred_at,
        "deleted": action == "delete",
    }


STATE_FIELDS = [*_appointment_fields({}, timezone.now(), "create"), "updated_at"]


def resource_nos(data: dict[str, Any]) -> list[str]:
    """The appointment's resource nos, deduplicated (for AppointmentResource)."""
    nos = {
        str(r.get("resource_no"))[:50] for r in data.get("resources") or []
        if isinstance(r, dict) and r.get("resource_no")
    }
    return sorted(nos)


class _Batch:
    """Accepting a request's new events together: a few set-based statements for all of them.

    The events are applied in request order against the appointments' states, exactly as one
    by one (a later event of an appointment sees the state an earlier one set; a stale one
    changes and sends nothing); then appointments, events, dispatches and resource rows are
    written with bulk statements, dispatches in event order (their ids keep each chain's order).
    `locked` holds the events' stored appointments, already locked by the caller (None: read
    and lock them here). Raises IntegrityError when a concurrent request stored one of the
    event ids or created one of the appointments first; the caller then decides event by event.
    """

    def __init__(
        self, client: ApiClient | None, events: Sequence[IncomingEvent],
        locked: dict[uuid.UUID, Appointment] | None = None,
    ) -> None:
        self.client = client
        self.events = events
        self.locked = locked
        self.connectors: dict[tuple[str, str, str], list[int]] = {}
        # An event's appointment is stored three times (state, event, dispatches): one text.
        self.texts = JsonTexts()

    def _connector_ids(self, values: dict[str, Any], action: str) -> list[int]:
        key = (values["source_app"], values["source_type"], action)
        if key not in self.connectors:
            self.connectors[key] = matching_connectors(*key)
        return self.connectors[key]

    def _appointments(self, now: datetime) -> tuple[dict[uuid.UUID, Appointment], set[int]]:
        """The events' appointments, the missing ones created from their first event; and the
        indexes of the events that created one."""
        guids = [_guid(event) for event in self.events]
        found = dict(self.locked) if self.locked is not None else _locked_appointments(guids)
        creating: dict[uuid.UUID, int] = {}
        for index, guid in enumerate(guids):
            if guid not in found and guid not in creating:
                creating[guid] = index
        new = [Appointment(guid=guid, created_at=now, updated_at=now, **_appointment_fields(
            self.events[i].appointment, self.events[i].occurred_at, self.events[i].action))
            for guid, i in creating.items()]
        insert_rows(new, texts=self.texts)
        for appointment in new:
            found[appointment.guid] = appointment
        return found, set(creating.values())

    def accept(self) -> list[EventOutcome]:
        now = timezone.now()
        appointments, creators = self._appointments(now)
        outcomes: list[EventOutcome] = []
        stored: list[AppointmentEvent] = []
        targets: list[list[int]] = []
        changed: dict[int, Appointment] = {}
        latest: dict[int, tuple[Appointment, dict[str, Any]]] = {}
        resources: set[tuple[int, str]] = set()
        for index, event in enumerate(self.events):
            appointment = appointments[_guid(event)]
            stale = index not in creators and event.occurred_at < appointment.state_at
            # Every resource an event named stays searchable in the dispatch log.
            resources.update((appointment.pk, no) for no in resource_nos(event.appointment))
            connector_ids: list[int] = []
            if not stale:
                values = _appointment_fields(event.appointment, event.occurred_at, event.action)
                if index not in creators:
                    for name, value in values.items():
                        setattr(appointment, name, value)
                    appointment.updated_at = now
                    changed[appointment.pk] = appointment
                latest[appointment.pk] = (appointment, event.appointment)
                connector_ids = self._connector_ids(values, event.action)
            targets.append(connector_ids)
            stored.append(AppointmentEvent(
                client=self.client, event_id=event.event_id, action=event.action,
                occurred_at=event.occurred_at, received_at=now, appointment=appointment,
                payload=event.appointment, source=event.source, stale=stale,
                dispatch_count=len(connector_ids),
            ))
            outcomes.append(EventOutcome(event.event_id, "accepted", stale=stale,
                                         appointment_guid=str(appointment.guid),
                                         connector_ids=connector_ids))
        if changed:
            update_rows(list(changed.values()), STATE_FIELDS)
        AppointmentResource.objects.bulk_create(
            [AppointmentResource(appointment_id=pk, resource_no=number)
             for pk, number in sorted(resources)],
            ignore_conflicts=True,
        )
        insert_rows(stored, texts=self.texts)
        dispatches = [
            Dispatch(event=record, appointment=record.appointment, connector_id=connector_id,
                     action=record.action, payload=record.payload, next_attempt_at=now)
            for record, connector_ids in zip(stored, targets, strict=True)
            for connector_id in connector_ids
        ]
        insert_rows(dispatches, texts=self.texts)
        ids = iter(d.pk for d in dispatches)
        for outcome in outcomes:
            outcome.dispatch_ids = [next(ids) for _ in range(outcome.dispatches)]
        created = {appointments[_guid(self.events[i])].pk for i in creators}
        queued = exchange_queue.appointments_changed(latest.values(), created=created)
        for outcome, record in zip(outcomes, stored, strict=True):
            outcome.exchange_queued = record.appointment_id in queued
        return outcomes


def _guid(event: IncomingEvent) -> uuid.UUID:
    return uuid.UUID(str(event.appointment["guid"]))


def _locked_appointments(guids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Appointment]:
    """The stored appointments among the GUIDs, locked until the transaction ends (in GUID
    order, so concurrent requests cannot deadlock)."""
    return {a.guid: a for a in Appointment.objects.select_for_update()
            .filter(guid__in=set(guids)).order_by("guid")}


Authorize = Callable[[Mapping[str, str]], None]


def events_accept(
    *, client: ApiClient | None, events: Sequence[IncomingEvent],
    authorize: Authorize | None = None,
) -> list[EventOutcome]:
    """Store the events and their dispatches, and queue the dispatches after commit.

    An event whose `event_id` this client already sent is answered `duplicate` and changes
    nothing (also when two copies race: the unique constraint decides). An event older than the
    appointment's stored state is recorded (`stale`) but changes nothing and sends nothing.
    `authorize`, when given, is called inside the transaction with {guid: source app} of the
    events' appointments already stored (read and locked for the intake anyway); whatever it
    raises propagates and nothing is stored.
    """
    try:
        with transaction.atomic():
            outcomes = _accept(client, events, authorize, together=True)
    except IntegrityError:
        # A concurrent request stored one of the event ids or created one of the appointments
        # between our reads and our inserts: everything again, each event on its own.
        with transaction.atomic():
            outcomes = _accept(client, events, authorize, together=False)
    if client is not None and outcomes:
        _note_use(client)
    return outcomes


def _accept(
    client: ApiClient | None, events: Sequence[IncomingEvent], authorize: Authorize | None,
    *, together: bool,
) -> list[EventOutcome]:
    """events_accept's work inside its transaction. `together`: one _Batch for all new events
    (raises IntegrityError when it loses a race); else one savepoint per event."""
    ids = list({e.event_id for e in events})
    known = set(first_column(  # as SQL: connectors/sql.py
        "SELECT event_id FROM connectors_appointmentevent WHERE client_id = %s"
        f" AND event_id IN ({placeholders(len(ids))})", [client.pk, *ids],
    )) if client is not None and ids else set()
    fresh: list[IncomingEvent] = []
    seen: set[str] = set()
    for event in events:
        if event.event_id not in known and event.event_id not in seen:
            seen.add(event.event_id)
            fresh.append(event)
    locked = _locked_appointments([_guid(event) for event in events])
    if authorize is not None:
        authorize({str(guid): appointment.source_app for guid, appointment in locked.items()})
    if not together:
        accepted = [_accept_alone(client, event) for event in fresh]
    else:
        accepted = _Batch(client, fresh, locked).accept() if fresh else []
    by_id = {outcome.event_id: outcome for outcome in accepted}
    outcomes = [
        by_id.pop(event.event_id) if event.event_id in by_id else EventOutcome(
            event.event_id, "duplicate", appointment_guid=str(event.appointment["guid"]))
        for event in events
    ]
    connector_ids = {pk for outcome in outcomes for pk in outcome.connector_ids}
    if connector_ids:
        transaction.on_commit(lambda: _ring(connector_ids))
    if any(outcome.exchange_queued for outcome in outcomes):
        transaction.on_commit(exchange_queue.queue_push)
    return outcomes


def _accept_alone(client: ApiClient | None, event: IncomingEvent) -> EventOutcome:
    """One event in its own savepoint (after a batch lost a race): `duplicate` when a
    concurrent request stored its event id first. Reads its appointment afresh: an earlier
    event's rolled-back savepoint may have changed the instances in memory."""
    try:
        with transaction.atomic():
            [outcome] = _Batch(client, [event]).accept()
            return outcome
    except IntegrityError:
        return EventOutcome(event.event_id, "duplicate",
                            appointment_guid=str(event.appointment["guid"]))


# `last_used_at` is for administrators ("is this key still in use?"): to the minute is enough,
# and skipping the write keeps a busy client's requests from all updating one row.
LAST_USED_PRECISION = timedelta(minutes=1)


def _note_use(client: ApiClient) -> None:
    now = timezone.now()
    if client.last_used_at is not None and client.last_used_at >= now - LAST_USED_PRECISION:
        return  # as read when the key was checked: recent enough, no statement
    ApiClient.objects.filter(pk=client.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION)
    ).update(last_used_at=now)
    client.last_used_at = now


def _ring(connector_ids: set[int]) -> None:
    from .delivery import ring

    ring(connector_ids)
