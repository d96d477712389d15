"""Applying changed Outlook events: the privacy filters, busy blocks that leak nothing, blocks
that stop qualifying, DimeConnect's own events moved or deleted in Outlook (written back to the
back offices), echo suppression and no loops with the outbound push, conflicts both ways, and
recurring series."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from connectors.intake import IncomingEvent, events_accept
from connectors.models import Appointment, AppointmentEvent, Dispatch
from exchange_sync.inbound import run_round
from exchange_sync.inbound.mapping import appointment_guid
from exchange_sync.models import EventLink, LinkOrigin, Resource, SyncLogEntry
from exchange_sync.outbound.push import push_all
from exchange_sync.outbound.render import content_hash, render_event
from tests.connectors.pipeline_factories import ConnectorFactory

from .outbound_support import APP, appointment, at, configure_exchange, resource

pytestmark = pytest.mark.django_db

ANN = "ann@contoso.test"


@pytest.fixture
def exchange(graph_server):
    return configure_exchange(debounce_s=0)


@pytest.fixture
def ann(graph_state, exchange) -> Resource:
    return resource(graph_state, "R1", ANN)


@pytest.fixture
def hook(db):
    """An enabled connector of the resources' source app: every change is dispatched to it."""
    return ConnectorFactory(source_app=APP)


def z(value: dict[str, str]) -> str:
    return value["dateTime"][:19] + "Z"


def outlook(graph_state, subject: str = "Dentist", hours: float = 2, **fields: Any
            ) -> dict[str, Any]:
    return graph_state.outlook_create(ANN, subject=subject, start=at(hours),
                                      end=at(hours + 1), **fields)


def block(ann: Resource, event: dict[str, Any]) -> Appointment | None:
    return Appointment.objects.filter(guid=appointment_guid(ann, event["id"])).first()


def ok_round(ann: Resource):
    summary = run_round(ann)
    assert summary.status == "ok", summary
    return summary


def plan(guid: str, *, occurred_at=None, **fields: Any) -> None:
    """The planner changes an appointment of R1 (through intake, as the API does)."""
    data = appointment(guid, resources=[("R1", ANN)], start=fields.pop(
        "start", timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)),
        **fields)
    action = "update" if Appointment.objects.filter(guid=guid).exists() else "create"
    events_accept(client=None, events=[IncomingEvent(
        event_id=str(uuid.uuid4()), action=action, occurred_at=occurred_at or timezone.now(),
        appointment=data)])


def pushed(graph_state, guid: str) -> dict[str, Any]:
    """Push the queue; returns the appointment's event as Outlook shows it."""
    summary = push_all(budget_s=30)
    assert summary.failed == 0 and summary.retrying == 0, summary
    link = EventLink.objects.get(appointment__guid=guid)
    [event] = [e for e in graph_state.events(ANN) if e["id"] == link.event_id]
    return event


def writes(graph_state) -> list[str]:
    return [f"{c.method} {c.url}" for c in graph_state.calls
            if c.method in ("POST", "PATCH", "DELETE") and "/events" in c.url]


# -- privacy filters -------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "override", "shared"), [
    ({"showAs": "free"}, None, False),  # the global default leaves "free" out
    ({"showAs": "free"}, {"shared_show_as": ["free", "busy"]}, True),
    ({"showAs": "oof"}, {"shared_show_as": ["busy"]}, False),
    ({"showAs": "unknown"}, None, False),
    ({"sensitivity": "personal"}, {"shared_sensitivities": ["normal"]}, False),
    ({"sensitivity": "personal"}, None, True),
])
def test_the_privacy_filters_decide_what_is_shared(graph_state, ann, fields, override, shared):
    if override is not None:
        Resource.objects.filter(pk=ann.pk).update(
            privacy_override=True, shared_show_as=override.get("shared_show_as", ["busy"]),
            shared_sensitivities=override.get("shared_sensitivities", ["normal", "personal"]))
        ann.refresh_from_db()
    event = outlook(graph_state, **fields)

    summary = ok_round(ann)

    assert (block(ann, event) is not None) is shared
    assert summary.counts.unshared == (0 if shared else 1)


def test_the_global_default_applies_when_the_resource_does_not_override(graph_state, ann):
    configure_exchange(debounce_s=0, shared_sensitivities=["normal"])
    Resource.objects.filter(pk=ann.pk).update(shared_sensitivities=["personal"])  # not used
    ann.refresh_from_db()
    personal = outlook(graph_state, sensitivity="personal")

    ok_round(ann)

    assert block(ann, personal) is None


SECRETS = ("Zanzibar", "Quokka", "Xylophone", "Flamingo", "Okapi")


@pytest.mark.parametrize("sensitivity", ["private", "confidential"])
def test_a_private_event_becomes_a_busy_block_that_leaks_nothing(graph_state, ann, hook,
                                                                  sensitivity):
    event = outlook(graph_state, "Lawyer Zanzibar", sensitivity=sensitivity,
                    body={"contentType": "html", "content": "<p>Quokka custody papers</p>"},
                    location={"displayName": "Hotel Xylophone"}, categories=["Flamingo"],
                    attendees=[{"emailAddress": {"address": "okapi@example.test",
                                                 "name": "Okapi"}, "type": "required"}])

    summary = ok_round(ann)

    assert summary.counts.created == 1
    appointment = block(ann, event)
    assert appointment is not None
    data = appointment.data
    assert (data["subject"], data["body"], data["category"]) == ("Busy", "", "")
    assert data["field_values"] == {"outlook_show_as": "busy",
                                    "outlook_sensitivity": sensitivity}
    assert Dispatch.objects.filter(appointment=appointment, connector=hook).count() == 1
    stored = json.dumps([
        list(Appointment.objects.values_list("data", flat=True)),
        list(AppointmentEvent.objects.values_list("payload", flat=True)),
        list(Dispatch.objects.values_list("payload", flat=True)),
        list(SyncLogEntry.objects.values_list("message", "hint", "detail")),
    ])
    for word in SECRETS:
        assert word.lower() not in stored.lower()
    assert "busy block" in SyncLogEntry.objects.get(kind="created").message

    graph_state.outlook_update(ANN, event["id"], subject="Lawyer Zanzibar again", start=at(3),
                               end=at(4))
    assert ok_round(ann).counts.updated == 1
    assert "zanzibar" not in json.dumps(list(Dispatch.objects.values_list(
        "payload", flat=True))).lower()


def test_a_block_that_no_longer_qualifies_is_removed(graph_state, ann, hook):
    event = outlook(graph_state, "Workshop")
    ok_round(ann)
    graph_state.outlook_update(ANN, event["id"], showAs="free")

    summary = ok_round(ann)

    assert summary.counts.deleted == 1 and summary.counts.unshared == 1
    appointment = block(ann, event)
    assert appointment is not None and appointment.deleted
    assert Dispatch.objects.filter(appointment=appointment, action="delete").count() == 1
    assert not EventLink.objects.exists()
    assert "no longer shared" in SyncLogEntry.objects.get(kind="deleted").message

    graph_state.outlook_update(ANN, event["id"], showAs="busy")  # qualifies again
    assert ok_round(ann).counts.created == 1
    assert not block(ann, event).deleted


# -- DimeConnect's own events ------------------------------------------------------------------
def test_our_event_moved_in_outlook_updates_the_times_and_writes_back(graph_state, ann, hook):
    guid = str(uuid.uuid4())
    plan(guid, subject="Install boiler", occurred_at=timezone.now() - timedelta(minutes=5))
    event = pushed(graph_state, guid)
    graph_state.outlook_update(ANN, event["id"], start=at(30), end=at(33),
                               subject="Renamed by the owner")

    summary = ok_round(ann)

    assert summary.counts.updated == 1 and summary.counts.conflicts == 0
    moved = Appointment.objects.get(guid=guid)
    assert (moved.data["start"], moved.data["end"]) == (z(at(30)), z(at(33)))
    assert moved.data["subject"] == "Install boiler"  # only the times come from Outlook
    dispatch = Dispatch.objects.filter(appointment=moved, connector=hook).latest("id")
    assert dispatch.action == "update"
    assert (dispatch.payload["start"], dispatch.payload["end"]) == (z(at(30)), z(at(33)))
    assert dispatch.event.source == "exchange" and dispatch.event.client is None
    link = EventLink.objects.get(appointment=moved)
    current = graph_state.events(ANN)[0]
    assert link.change_key == current["changeKey"] and link.origin == LinkOrigin.PLANNER
    assert link.planner_state_at == moved.state_at
    assert link.content_hash == content_hash(render_event(moved))
    graph_state.reset_counters()
    push_all(budget_s=30)
    assert writes(graph_state) == []  # nothing echoes back to Outlook


def test_our_event_deleted_in_outlook_deletes_the_appointment(graph_state, ann, hook):
    guid = str(uuid.uuid4())
    plan(guid, occurred_at=timezone.now() - timedelta(minutes=5))
    event = pushed(graph_state, guid)
    ok_round(ann)
    graph_state.outlook_delete(ANN, event["id"])

    assert ok_round(ann).counts.deleted == 1

    gone = Appointment.objects.get(guid=guid)
    assert gone.deleted
    assert Dispatch.objects.filter(appointment=gone, connector=hook, action="delete").count() == 1
    link = EventLink.objects.get(appointment=gone)
    assert link.event_id == "" and link.generation == 1
    graph_state.reset_counters()
    push_all(budget_s=30)
    assert writes(graph_state) == [] and graph_state.events(ANN) == []


def test_our_own_push_comes_back_through_delta_as_an_echo(graph_state, ann, hook):
    guid = str(uuid.uuid4())
    plan(guid)
    pushed(graph_state, guid)
    events_before = AppointmentEvent.objects.count()
    dispatches_before = Dispatch.objects.count()

    summary = ok_round(ann)

    assert summary.read == 1 and summary.counts.skipped == 1
    assert (summary.counts.created, summary.counts.updated, summary.counts.deleted) == (0, 0, 0)
    assert AppointmentEvent.objects.count() == events_before
    assert Dispatch.objects.count() == dispatches_before


def test_ten_back_and_forth_changes_make_no_loop(graph_state, ann, hook):
    guid = str(uuid.uuid4())
    plan(guid, subject="Round 0", occurred_at=timezone.now() - timedelta(minutes=5))
    event_id = pushed(graph_state, guid)["id"]
    ok_round(ann)
    for number in range(1, 11):
        plan(guid, subject=f"Round {number}")
        assert pushed(graph_state, guid)["subject"] == f"Round {number}"
        graph_state.outlook_update(ANN, event_id, start=at(24 + number), end=at(26 + number))
        summary = ok_round(ann)
        assert summary.counts.updated == 1 and summary.counts.conflicts == 0, summary
    push_all(budget_s=30)
    ok_round(ann)
    graph_state.reset_counters()
    link_before = EventLink.objects.values_list("change_key", "content_hash").get()

    push_all(budget_s=30)
    summary = ok_round(ann)
    push_all(budget_s=30)

    assert summary.read == 0
    assert graph_state.request_count == 1  # the delta read, nothing else
    assert EventLink.objects.values_list("change_key", "content_hash").get() == link_before
    [event] = graph_state.events(ANN)
    assert event["id"] == event_id and event["subject"] == "Round 10"
    assert Appointment.objects.get(guid=guid).data["start"] == z(at(34))
    assert not SyncLogEntry.objects.filter(kind="conflict").exists()


def test_a_newer_outlook_change_wins_a_conflict(graph_state, ann, hook):
    guid = str(uuid.uuid4())
    plan(guid, subject="Original", occurred_at=timezone.now() - timedelta(minutes=10))
    event = pushed(graph_state, guid)
    plan(guid, subject="Planner's subject", occurred_at=timezone.now() - timedelta(minutes=5))
    graph_state.outlook_update(ANN, event["id"], start=at(40), end=at(41))  # later

    summary = ok_round(ann)

    assert summary.counts.conflicts == 1 and summary.counts.updated == 1
    appointment = Appointment.objects.get(guid=guid)
    assert appointment.data["start"] == z(at(40))
    assert appointment.data["subject"] == "Planner's subject"
    conflict = SyncLogEntry.objects.get(kind="conflict", direction="inbound")
    assert conflict.detail["winner"] == "outlook"
    assert {"outlook_modified", "planner_changed"} <= set(conflict.detail)
    assert "Outlook change is newer" in conflict.message
    after = pushed(graph_state, guid)  # the planner's other change still goes out
    assert after["subject"] == "Planner's subject" and after["start"] == at(40)
    assert ok_round(ann).counts.updated == 0


def test_a_newer_planner_change_wins_a_conflict(graph_state, ann, hook):
    guid = str(uuid.uuid4())
    plan(guid, subject="Original", occurred_at=timezone.now() - timedelta(minutes=10))
    event = pushed(graph_state, guid)
    graph_state.outlook_update(ANN, event["id"], start=at(50), end=at(51))
    planner_start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    plan(guid, subject="Planner wins", start=planner_start,
         occurred_at=timezone.now() + timedelta(seconds=5))

    summary = ok_round(ann)

    assert summary.counts.conflicts == 1 and summary.counts.updated == 0
    appointment = Appointment.objects.get(guid=guid)
    assert appointment.data["start"] == planner_start.strftime("%Y-%m-%dT%H:%M:%SZ")
    conflict = SyncLogEntry.objects.get(kind="conflict", direction="inbound")
    assert conflict.detail["winner"] == "planner"
    assert "planner's change is newer" in conflict.message
    assert ok_round(ann).counts.conflicts == 0  # logged once
    after = pushed(graph_state, guid)  # 412 → read → the planner's state is written
    assert after["subject"] == "Planner wins"
    assert after["start"]["dateTime"].startswith(planner_start.strftime("%Y-%m-%dT%H:%M"))


# -- recurring series ----------------------------------------------------------------------------
def test_recurring_series_arrive_as_occurrences_with_their_series_details(graph_state, ann):
    first = timezone.now() + timedelta(days=1)
    master = outlook(graph_state, "Weekly planning", hours=24, recurrence={
        "pattern": {"type": "weekly", "interval": 1,
                    "daysOfWeek": [first.strftime("%A").lower()]},
        "range": {"type": "numbered", "startDate": first.date().isoformat(),
                  "numberOfOccurrences": 3}})

    summary = ok_round(ann)

    assert summary.counts.created == 3
    occurrences = Appointment.objects.filter(source_app=APP)
    for occurrence in occurrences:
        values = occurrence.data["field_values"]
        assert values["outlook_event_type"] == "occurrence"
        assert values["outlook_series_master_id"] == master["id"]
        assert values["outlook_series_recurrence"].startswith("weekly, every 1 on ")
        assert "3 times" in values["outlook_series_recurrence"]
        assert occurrence.data["subject"] == "Weekly planning"
    assert set(EventLink.objects.values_list("series_master_id", flat=True)) == {master["id"]}
    starts = sorted(o.data["start"] for o in occurrences)
    assert starts[1] > starts[0] and len(set(starts)) == 3
