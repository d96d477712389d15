"""Applying one mailbox's changed and removed events to the planner (inside the round's
transaction; exchange_sync/inbound/rounds.py reads, this writes).

Every appointment change goes through `connectors.intake.events_accept` (client None, source
"exchange"), so it is stored, dispatched to the source app's back offices and queued for the
outbound push like any other change. The link is brought up to date in the same transaction:
its changeKey says "this Outlook state is applied" (the next round skips it: echo suppression)
and its content hash says "Outlook already shows this planner state" (the push that intake
queued finds nothing to write).

Nothing of a busy block's event (subject, body, location, categories, attendees) is written
anywhere: not in the appointment, its events, dispatches, or the sync log. Log messages never
quote an event's subject for any event.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from connectors.intake import IncomingEvent, events_accept
from connectors.models import Appointment

from ..models import (
    EventLink,
    ExchangeSettings,
    LinkOrigin,
    Resource,
    SyncDirection,
    SyncLogEntry,
)
from ..models.sync import TRANSACTION_NAMESPACE
from ..outbound import mark_pending, queue_push
from ..outbound.render import content_hash, render_event, schedulable
from ..times import parse_utc
from .mapping import (
    appointment_data,
    appointment_guid,
    event_time,
    privacy,
    times,
)

Kind = SyncLogEntry.Kind
EVENT_ID_LIMIT = 200  # AppointmentEvent.event_id
AFTER = timedelta(milliseconds=1)


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unshared: int = 0
    skipped: int = 0
    conflicts: int = 0
    held: int = 0
    errors: int = 0


def event_key(resource: Resource, event_id: str, change_key: str) -> str:
    """The AppointmentEvent id of one applied Outlook state (event ids longer than the column
    allows are replaced by their SHA-256)."""
    key = f"exchange:{resource.pk}:{event_id}:{change_key}"
    if len(key) > EVENT_ID_LIMIT:
        digest = hashlib.sha256(event_id.encode()).hexdigest()[:40]
        key = f"exchange:{resource.pk}:sha256-{digest}:{change_key}"[:EVENT_ID_LIMIT]
    return key


def _after(moment: datetime, appointment: Appointment | None) -> datetime:
    """`moment`, or just after the appointment's stored state when that is newer (clocks of
    back offices and Exchange differ; a change we decided to apply must never be stale)."""
    if appointment is None:
        return moment
    return max(moment, appointment.state_at + AFTER)


def _same_times(appointment: Appointment, event: dict[str, Any]) -> bool:
    """Whether Outlook shows the times the appointment's current state renders to."""
    if not schedulable(appointment.data):
        return False
    rendered = render_event(appointment)
    return (bool(event.get("isAllDay")) == rendered["isAllDay"]
            and event_time(event.get("start")) == event_time(rendered["start"])
            and event_time(event.get("end")) == event_time(rendered["end"]))


def _same_content(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    keys = set(current) | set(wanted)
    for key in keys:
        if key in ("start", "end"):
            if parse_utc(current.get(key)) != parse_utc(wanted.get(key)):
                return False
        elif current.get(key) != wanted.get(key):
            return False
    return True


class Applier:
    """Applies a round's events for one resource; collects counts and sync log entries.
    Call `flush()` inside the transaction when done."""

    def __init__(self, resource: Resource, exchange: ExchangeSettings,
                 counts: Counts | None = None, *, series: dict[str, str] | None = None) -> None:
        self.resource = resource
        self.exchange = exchange
        self.counts = counts or Counts()
        self.series = series or {}
        self.logs: list[SyncLogEntry] = []
        self.push_needed = False
        self._ours: set[str] | None = None
        self.links: dict[str, EventLink] = {
            link.event_id: link
            for link in EventLink.objects.filter(resource=resource).exclude(event_id="")
            .select_related("appointment")
        }

    # -- entry points ----------------------------------------------------------------------
    def is_echo(self, event: dict[str, Any]) -> bool:
        link = self.links.get(str(event.get("id")))
        return bool(link and link.change_key and link.change_key == event.get("changeKey"))

    def change(self, event: dict[str, Any]) -> None:
        """Apply one changed (not removed, not cancelled) event. Errors of this one event are
        logged and counted; the rest of the round goes on."""
        if self.is_echo(event) or event.get("type") == "seriesMaster":
            self.counts.skipped += 1
            return
        link = self.links.get(str(event["id"]))
        try:
            with transaction.atomic():
                if link is not None and link.origin == LinkOrigin.PLANNER:
                    self._own(link, event)
                elif link is None and self._is_ours(event):
                    self.counts.skipped += 1  # our create whose link is being written
                else:
                    self._mailbox(link, event)
        except (ValueError, KeyError, TypeError) as exc:
            self.counts.errors += 1
            self.log(Kind.ERROR, f"Could not apply a change of this Outlook event: {exc}",
                      event_id=str(event.get("id")), appointment=link.appointment if link
                      else None)

    def remove(self, link: EventLink, reason: str) -> None:
        """The linked event is gone (deleted or cancelled): delete its appointment (written back
        to the back offices) and forget the event."""
        appointment = link.appointment
        event_id = link.event_id
        if not appointment.deleted:
            self._accept("delete", appointment.data, _after(timezone.now(), appointment),
                         event_id, "removed")
            self.counts.deleted += 1
            whose = ("DimeConnect's event" if link.origin == LinkOrigin.PLANNER
                     else "the mailbox owner's event")
            self.log(Kind.DELETED, f"Deleted the appointment: {whose} was {reason}.",
                      event_id=event_id, appointment=appointment)
        if link.origin == LinkOrigin.PLANNER:
            link.forget_event()
        else:
            link.delete()
        self.links.pop(event_id, None)

    def flush(self) -> None:
        """Write the collected log entries; ring the outbound doorbell after commit if needed."""
        SyncLogEntry.objects.bulk_create(self.logs)
        self.logs = []
        if self.push_needed:
            transaction.on_commit(queue_push)
            self.push_needed = False

    # -- DimeConnect's own events ----------------------------------------------------------
    def _own(self, link: EventLink, event: dict[str, Any]) -> None:
        """The owner moved (or resized) DimeConnect's event: only its times are taken."""
        appointment = Appointment.objects.get(pk=link.appointment_id)
        link.appointment = appointment
        modified = parse_utc(event.get("lastModifiedDateTime")) or timezone.now()
        planner_changed = (link.planner_state_at is not None
                           and appointment.state_at > link.planner_state_at)
        if appointment.deleted:
            self.counts.skipped += 1  # the push deletes the event; a deletion is final
            return
        if planner_changed and modified <= appointment.state_at:
            self._conflict(link, event, modified, outlook_wins=False)
            mark_pending([appointment.pk])
            self.push_needed = True
            return
        if planner_changed:
            self._conflict(link, event, modified, outlook_wins=True)
        if _same_times(appointment, event):
            self._touch(link, event, modified)
            self.counts.skipped += 1
            return
        data = {**appointment.data, **times(event)}
        self._accept("update", data, _after(modified, appointment), link.event_id,
                     str(event.get("changeKey") or ""))
        appointment.refresh_from_db()
        # In a conflict Outlook won only the times: the planner's other changes are still to
        # be written, so the hash of what Outlook shows stays the old one.
        digest = link.content_hash if planner_changed else content_hash(render_event(appointment))
        self._store(link, event, modified, appointment, digest)
        self.counts.updated += 1
        self.log(Kind.UPDATED, "The mailbox owner moved or resized DimeConnect's event in "
                  "Outlook: the appointment's times were updated and written back to the back "
                  "offices.", event_id=link.event_id, appointment=appointment,
                  detail={"start": data["start"], "end": data["end"]})

    def _conflict(self, link: EventLink, event: dict[str, Any], modified: datetime, *,
                  outlook_wins: bool) -> None:
        """Both sides changed since the last sync: the later change wins (logged once)."""
        appointment = link.appointment
        change_key = str(event.get("changeKey") or "")
        stamps = {"outlook_modified": modified.isoformat(),
                  "planner_changed": appointment.state_at.isoformat()}
        logged = SyncLogEntry.objects.filter(
            appointment=appointment, kind=Kind.CONFLICT
        ).filter(detail__change_key=change_key).exists() or SyncLogEntry.objects.filter(
            appointment=appointment, kind=Kind.CONFLICT, direction=SyncDirection.OUTBOUND,
            detail__outlook_modified=modified.isoformat()).exists()
        if logged:
            return
        self.counts.conflicts += 1
        if outlook_wins:
            message = ("Conflict: the appointment changed in the planner and the event in "
                       "Outlook since the last sync; the Outlook change is newer and wins (its "
                       "times were taken), the planner's change of the times was overwritten.")
        else:
            message = ("Conflict: the event changed in Outlook and the appointment in the "
                       "planner since the last sync; the planner's change is newer and wins, "
                       "the Outlook change is overwritten by the next push.")
        self.log(Kind.CONFLICT, message, event_id=link.event_id, appointment=appointment,
                  detail={**stamps, "winner": "outlook" if outlook_wins else "planner",
                          "change_key": change_key})

    # -- the mailbox owner's own events ------------------------------------------------------
    def _mailbox(self, link: EventLink | None, event: dict[str, Any]) -> None:
        event_id = str(event["id"])
        decision = privacy(event, self.resource, self.exchange)
        appointment = (Appointment.objects.get(pk=link.appointment_id) if link is not None
                       else Appointment.objects.filter(
                           guid=appointment_guid(self.resource, event_id)).first())
        modified = parse_utc(event.get("lastModifiedDateTime")) or timezone.now()
        if not decision.shared:
            self.counts.unshared += 1
            if appointment is not None and not appointment.deleted:
                self._accept("delete", appointment.data, _after(modified, appointment), event_id,
                             str(event.get("changeKey") or ""))
                self.counts.deleted += 1
                self.log(Kind.DELETED, "Deleted the block: the Outlook event is no longer "
                          f"shared with the planner ({decision.reason}).", event_id=event_id,
                          appointment=appointment)
            if link is not None:
                link.delete()
                self.links.pop(event_id, None)
            return
        master = str(event.get("seriesMasterId") or "")
        data = appointment_data(event, self.resource, busy=decision.busy,
                                series=self.series.get(master, ""))
        if appointment is not None and not appointment.deleted and _same_content(
                appointment.data, data):
            self._link(appointment, link, event, modified)
            self.counts.skipped += 1
            return
        action = "create" if appointment is None or appointment.deleted else "update"
        self._accept(action, data, _after(modified, appointment), event_id,
                     str(event.get("changeKey") or ""))
        appointment = Appointment.objects.get(guid=data["guid"])
        self._link(appointment, link, event, modified)
        what = "a busy block (a private event: no details shared)" if decision.busy else \
            "the mailbox owner's Outlook event"
        if action == "create":
            self.counts.created += 1
            self.log(Kind.CREATED, f"Created an appointment from {what}.", event_id=event_id,
                      appointment=appointment)
        else:
            self.counts.updated += 1
            self.log(Kind.UPDATED, f"Updated the appointment from {what}.", event_id=event_id,
                      appointment=appointment)

    def _link(self, appointment: Appointment, link: EventLink | None, event: dict[str, Any],
              modified: datetime) -> None:
        if link is None:
            link, _ = EventLink.objects.get_or_create(
                appointment=appointment, resource=self.resource,
                defaults={"origin": LinkOrigin.OUTLOOK},
            )
            link.event_id = str(event["id"])
        link.series_master_id = str(event.get("seriesMasterId") or "")
        digest = content_hash(render_event(appointment)) if schedulable(appointment.data) else ""
        self._store(link, event, modified, appointment, digest)
        self.links[link.event_id] = link

    # -- helpers -------------------------------------------------------------------------------
    def _is_ours(self, event: dict[str, Any]) -> bool:
        """An event DimeConnect created (its transactionId is one of our links') whose link
        does not name it yet: a push is storing it right now."""
        transaction_id = str(event.get("transactionId") or "")
        if not transaction_id:
            return False
        if self._ours is None:
            self._ours = {
                str(uuid.uuid5(TRANSACTION_NAMESPACE, f"{guid}:{self.resource.pk}:{generation}"))
                for guid, last in EventLink.objects.filter(
                    resource=self.resource, origin=LinkOrigin.PLANNER
                ).values_list("appointment__guid", "generation")
                for generation in range(last + 1)
            }
        return transaction_id in self._ours

    def _accept(self, action: str, data: dict[str, Any], occurred_at: datetime, event_id: str,
                change_key: str) -> None:
        events_accept(client=None, events=[IncomingEvent(
            event_id=event_key(self.resource, event_id, change_key or "removed"), action=action,
            occurred_at=occurred_at, appointment=data, source="exchange",
        )])

    def _touch(self, link: EventLink, event: dict[str, Any], modified: datetime) -> None:
        """Outlook's new state needs nothing in the planner: remember it was seen."""
        link.change_key = str(event.get("changeKey") or "")
        link.outlook_modified_at = modified
        link.synced_at = timezone.now()
        link.save(update_fields=["change_key", "outlook_modified_at", "synced_at"])

    def _store(self, link: EventLink, event: dict[str, Any], modified: datetime,
               appointment: Appointment, digest: str) -> None:
        link.change_key = str(event.get("changeKey") or "")
        link.outlook_modified_at = modified
        link.planner_state_at = appointment.state_at
        link.content_hash = digest
        link.synced_at = timezone.now()
        link.save(update_fields=["event_id", "change_key", "series_master_id",
                                 "outlook_modified_at", "planner_state_at", "content_hash",
                                 "synced_at"])

    def log(self, kind: str, message: str, *, event_id: str = "",
             appointment: Appointment | None = None, detail: dict[str, Any] | None = None,
             hint: str = "") -> None:
        self.logs.append(SyncLogEntry(
            direction=SyncDirection.INBOUND, kind=kind, resource=self.resource,
            appointment=appointment, event_id=event_id[:255], message=message, hint=hint,
            detail=detail or {},
        ))
