"""Accepting appointment events: the outbox write (DESIGN.md, Write-back).

For each event, in one transaction: upsert the appointment (locked, so events of one
appointment are serialised), store the event, and create one Dispatch per enabled connector of
its source app (and source type, when the connector names one) whose CRUD types include the
action. After commit each dispatch is queued; the sweeper finds any whose message was lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .models import (
    ApiClient,
    Appointment,
    AppointmentEvent,
    AppointmentResource,
    Connector,
    Dispatch,
)


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
    dispatches: int = 0
    stale: bool = False
    appointment_guid: str = ""
    dispatch_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "status": self.status,
            "dispatches": self.dispatches,
            "stale": self.stale,
            "appointment_guid": self.appointment_guid,
        }


def matching_connectors(source_app: str, source_type: str, action: str) -> list[Connector]:
    """Enabled connectors of the source app (and source type) whose CRUD types include the
    action. Quarantined connectors match too: their dispatches wait for "resume"."""
    return list(
        Connector.objects.filter(enabled=True, source_app=source_app)
        .filter(Q(source_type="") | Q(source_type=source_type))
        .filter(crud_types__contains=action)
        .order_by("pk")
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


def resource_nos(data: dict[str, Any]) -> list[str]:
    """The appointment's resource nos, deduplicated (for AppointmentResource)."""
    nos = {
        str(r.get("resource_no"))[:50] for r in data.get("resources") or []
        if isinstance(r, dict) and r.get("resource_no")
    }
    return sorted(nos)


def _accept_one(client: ApiClient | None, event: IncomingEvent) -> EventOutcome:
    guid = uuid.UUID(str(event.appointment["guid"]))
    outcome = EventOutcome(event.event_id, "accepted", appointment_guid=str(guid))
    values = _appointment_fields(event.appointment, event.occurred_at, event.action)
    appointment, created = Appointment.objects.select_for_update().get_or_create(
        guid=guid, defaults=values
    )
    outcome.stale = not created and event.occurred_at < appointment.state_at
    # Every resource an event named stays searchable in the dispatch log (even a stale one's).
    AppointmentResource.objects.bulk_create(
        [AppointmentResource(appointment=appointment, resource_no=no)
         for no in resource_nos(event.appointment)],
        ignore_conflicts=True,
    )
    stored = AppointmentEvent.objects.create(
        client=client,
        event_id=event.event_id,
        action=event.action,
        occurred_at=event.occurred_at,
        appointment=appointment,
        payload=event.appointment,
        source=event.source,
        stale=outcome.stale,
    )
    if outcome.stale:
        return outcome  # recorded; the newer state stays, and nothing older is written back
    if not created:
        for name, value in values.items():
            setattr(appointment, name, value)
        appointment.save()
    now = timezone.now()
    dispatches = Dispatch.objects.bulk_create(
        Dispatch(
            event=stored,
            appointment=appointment,
            connector=connector,
            action=event.action,
            payload=event.appointment,
            next_attempt_at=now,
        )
        for connector in matching_connectors(
            values["source_app"], values["source_type"], event.action
        )
    )
    stored.dispatch_count = len(dispatches)
    stored.save(update_fields=["dispatch_count"])
    outcome.dispatches = len(dispatches)
    outcome.dispatch_ids = [d.pk for d in dispatches]
    return outcome


def events_accept(
    *, client: ApiClient | None, events: Sequence[IncomingEvent]
) -> list[EventOutcome]:
    """Store the events and their dispatches, and queue the dispatches after commit.

    An event whose `event_id` this client already sent is answered `duplicate` and changes
    nothing (also when two copies race: the unique constraint decides). An event older than the
    appointment's stored state is recorded (`stale`) but changes nothing and sends nothing.
    The caller has checked that the client may post for each event's source app.
    """
    outcomes: list[EventOutcome] = []
    with transaction.atomic():
        known = set(
            AppointmentEvent.objects.filter(
                client=client, event_id__in=[e.event_id for e in events]
            ).values_list("event_id", flat=True)
        ) if client is not None else set()
        seen: set[str] = set()
        for event in events:
            if event.event_id in known or event.event_id in seen:
                outcomes.append(EventOutcome(event.event_id, "duplicate",
                                             appointment_guid=str(event.appointment["guid"])))
                continue
            seen.add(event.event_id)
            try:
                with transaction.atomic():  # a savepoint: a racing duplicate undoes only itself
                    outcomes.append(_accept_one(client, event))
            except IntegrityError:
                outcomes.append(EventOutcome(event.event_id, "duplicate",
                                             appointment_guid=str(event.appointment["guid"])))
        dispatch_ids = [pk for outcome in outcomes for pk in outcome.dispatch_ids]
        if dispatch_ids:
            transaction.on_commit(lambda: _enqueue(dispatch_ids))
    if client is not None and outcomes:
        _note_use(client)
    return outcomes


# `last_used_at` is for administrators ("is this key still in use?"): to the minute is enough,
# and skipping the write keeps a busy client's requests from all updating one row.
LAST_USED_PRECISION = timedelta(minutes=1)


def _note_use(client: ApiClient) -> None:
    now = timezone.now()
    ApiClient.objects.filter(pk=client.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION)
    ).update(last_used_at=now)


def _enqueue(dispatch_ids: list[int]) -> None:
    from .delivery import enqueue

    enqueue(dispatch_ids)
