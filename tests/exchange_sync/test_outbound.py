"""Planner → Outlook against the fake Graph: create, update, delete, rules, resources swapped,
412 conflicts, a 429 storm, a failing batch item, idempotent re-runs and `$batch`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from connectors.models import Appointment
from exchange_sync.models import EventLink, OutboundRule, PendingSync, SyncLogEntry
from exchange_sync.models.sync import EXTENDED_PROPERTY_ID
from exchange_sync.outbound import mark_pending

from .outbound_support import (
    BASE,
    accept,
    appointment,
    configure_exchange,
    new_guid,
    push,
    resource,
)

pytestmark = pytest.mark.django_db

ANN, BOB = "ann@contoso.test", "bob@contoso.test"


@pytest.fixture
def exchange(graph_server):
    return configure_exchange()


@pytest.fixture
def ann(graph_state, exchange):
    return resource(graph_state, "R1", ANN)


@pytest.fixture
def bob(graph_state, exchange):
    return resource(graph_state, "R2", BOB)


def only_event(graph_state, mailbox):
    events = graph_state.events(mailbox)
    assert len(events) == 1, events
    return events[0]


def batch_bodies(graph_server):
    return [r.json() for r in graph_server.requests if r.path.endswith("/$batch")]


def test_it_creates_the_event_with_a_transaction_id_and_our_extended_property(
        graph_state, graph_client, ann):
    guid = new_guid()
    accept("create", appointment(guid, resources=[("R1", ANN)]))
    summary = push()
    assert summary.created == 1 and summary.failed == 0
    event = only_event(graph_state, ANN)
    assert event["subject"] == "Install boiler"
    assert event["start"] == {"dateTime": "2030-03-04T09:00:00.0000000", "timeZone": "UTC"}
    assert event["end"]["dateTime"].startswith("2030-03-04T11:00:00")
    assert event["categories"] == ["Install"] and event["showAs"] == "busy"
    link = EventLink.objects.get()
    assert link.event_id == event["id"] and link.change_key == event["changeKey"]
    assert event["transactionId"] == link.transaction_id
    expand = f"singleValueExtendedProperties($filter=id eq '{EXTENDED_PROPERTY_ID}')"
    expanded = graph_client.request(
        "GET", f"/users/{ANN}/events/{event['id']}", params={"$expand": expand}
    ).body
    assert expanded["singleValueExtendedProperties"][0]["value"] == guid
    assert not PendingSync.objects.exists()
    assert graph_state.prefer_missing == 0


def test_it_moves_the_event_with_if_match_and_deletes_it(graph_server, graph_state, ann):
    guid = new_guid()
    accept("create", appointment(guid, resources=[("R1", ANN)]))
    push()
    first = only_event(graph_state, ANN)
    accept("update", appointment(guid, resources=[("R1", ANN)], start=BASE + timedelta(hours=3),
                                 subject="Install boiler (moved)"))
    graph_server.reset()
    assert push().updated == 1
    moved = only_event(graph_state, ANN)
    assert moved["id"] == first["id"] and moved["subject"] == "Install boiler (moved)"
    assert moved["start"]["dateTime"].startswith("2030-03-04T12:00:00")
    [patch] = [item for body in batch_bodies(graph_server) for item in body["requests"]]
    assert patch["method"] == "PATCH"
    assert patch["headers"]["If-Match"] == f'W/"{first["changeKey"]}"'
    accept("delete", appointment(guid, resources=[("R1", ANN)]))
    assert push().deleted == 1
    assert graph_state.events(ANN) == []
    link = EventLink.objects.get()
    assert link.event_id == "" and link.generation == 1


def test_a_re_run_writes_nothing_and_a_replayed_create_makes_no_second_event(
        graph_state, ann):
    guid = new_guid()
    accept("create", appointment(guid, resources=[("R1", ANN)]))
    push()
    graph_state.reset_counters()
    mark_pending([EventLink.objects.get().appointment_id])
    summary = push()
    assert (summary.created, summary.updated, summary.deleted) == (0, 0, 0)
    assert graph_state.request_count == 0
    # A worker died after Graph created the event but before the link was stored.
    EventLink.objects.update(event_id="", change_key="", content_hash="")
    mark_pending([EventLink.objects.get().appointment_id])
    push()
    assert len(graph_state.events(ANN)) == 1
    assert EventLink.objects.get().event_id == graph_state.events(ANN)[0]["id"]


def test_only_appointments_passing_the_rules_reach_outlook(graph_state, ann):
    OutboundRule.objects.create(resource=ann, field="category", operator="equals",
                                value="Install")
    repair, install = new_guid(), new_guid()
    accept("create", appointment(repair, resources=[("R1", ANN)], category="Repair"))
    accept("create", appointment(install, resources=[("R1", ANN)], category="Install"))
    push()
    assert [e["categories"] for e in graph_state.events(ANN)] == [["Install"]]
    # The appointment stops passing: its event goes.
    accept("update", appointment(install, resources=[("R1", ANN)], category="Repair"))
    assert push().deleted == 1
    assert graph_state.events(ANN) == []
    # The rule changes: re-pushing brings both.
    OutboundRule.objects.update(value="Repair")
    mark_pending(Appointment.objects.values_list("pk", flat=True))
    assert push().created == 2
    assert len(graph_state.events(ANN)) == 2


def test_a_resource_taken_off_loses_the_event_and_the_new_one_gets_it(graph_state, ann, bob):
    guid = new_guid()
    accept("create", appointment(guid, resources=[("R1", ANN)]))
    push()
    accept("update", appointment(guid, resources=[("R2", BOB)]))
    summary = push()
    assert (summary.created, summary.deleted) == (1, 1)
    assert graph_state.events(ANN) == []
    assert only_event(graph_state, BOB)["subject"] == "Install boiler"


def test_a_resource_without_sync_gets_nothing(graph_state, exchange):
    resource(graph_state, "R3", "carl@contoso.test", sync=False)
    accept("create", appointment(new_guid(), resources=[("R3", "carl@contoso.test")]))
    push()
    assert graph_state.events("carl@contoso.test") == []
    assert not EventLink.objects.exists()


def test_only_our_events_are_ever_deleted(graph_state, ann):
    own = graph_state.outlook_create(ANN, subject="Dentist", start={
        "dateTime": "2030-03-04T09:00:00", "timeZone": "UTC"}, end={
        "dateTime": "2030-03-04T10:00:00", "timeZone": "UTC"})
    guid = new_guid()
    accept("create", appointment(guid, resources=[("R1", ANN)]))
    push()
    accept("delete", appointment(guid, resources=[("R1", ANN)]))
    push()
    assert [e["id"] for e in graph_state.events(ANN)] == [own["id"]]


def test_a_412_is_read_again_and_reapplied_when_the_planner_is_newer(graph_state, ann):
    guid = new_guid()
    now = timezone.now()
    accept("create", appointment(guid, resources=[("R1", ANN)]),
           occurred_at=now - timedelta(hours=2))
    push()
    event = only_event(graph_state, ANN)
    graph_state.outlook_update(ANN, event["id"], subject="Renamed in Outlook")
    accept("update", appointment(guid, resources=[("R1", ANN)], subject="Planner wins"),
           occurred_at=now + timedelta(minutes=1))
    summary = push()
    assert summary.updated == 1 and summary.conflicts == 0
    assert only_event(graph_state, ANN)["subject"] == "Planner wins"
    assert EventLink.objects.get().change_key == only_event(graph_state, ANN)["changeKey"]


def test_a_412_with_a_newer_outlook_change_is_a_conflict_outlook_wins(graph_state, ann):
    guid = new_guid()
    now = timezone.now()
    accept("create", appointment(guid, resources=[("R1", ANN)]),
           occurred_at=now - timedelta(hours=2))
    push()
    event = only_event(graph_state, ANN)
    graph_state.outlook_update(ANN, event["id"], subject="Renamed in Outlook")
    accept("update", appointment(guid, resources=[("R1", ANN)], subject="Older planner change"),
           occurred_at=now - timedelta(hours=1))
    summary = push()
    assert summary.conflicts == 1 and summary.updated == 0
    assert only_event(graph_state, ANN)["subject"] == "Renamed in Outlook"
    entry = SyncLogEntry.objects.get(kind=SyncLogEntry.Kind.CONFLICT)
    assert "Outlook change wins" in entry.message
    assert entry.detail["planner_changed"] < entry.detail["outlook_modified"]


def test_a_429_storm_is_waited_out_without_duplicates(graph_state, ann):
    guids = [new_guid() for _ in range(6)]
    for guid in guids:
        accept("create", appointment(guid, resources=[("R1", ANN)]))
    graph_state.throttle(8, retry_after_s=1)
    summary = push()
    assert summary.created == 6 and summary.retrying == 0
    assert len(graph_state.events(ANN)) == 6


def test_a_storm_longer_than_the_retries_puts_the_work_back_in_the_queue(graph_state, ann):
    for _ in range(3):
        accept("create", appointment(new_guid(), resources=[("R1", ANN)]))
    graph_state.throttle(1000, retry_after_s=1)
    summary = push()
    assert summary.retrying == 3 and summary.created == 0
    rows = list(PendingSync.objects.all())
    assert len(rows) == 3
    assert all(row.next_attempt_at > timezone.now() and row.attempts == 1 for row in rows)
    assert all("throttl" in row.last_error.lower() or "429" in row.last_error for row in rows)
    assert all(row.not_before is not None and row.not_before > timezone.now() for row in rows)
    # A newer change makes the appointment due, yet not before Graph's Retry-After.
    mark_pending([rows[0].appointment_id])
    assert push().claimed == 0
    graph_state.failures.clear()
    PendingSync.objects.update(next_attempt_at=timezone.now(), not_before=None)  # time passes
    assert push().created == 3
    assert len(graph_state.events(ANN)) == 3


def test_a_batch_with_one_failing_item_logs_it_and_delivers_the_rest(graph_state, ann, bob):
    accept("create", appointment(new_guid(), resources=[("R1", ANN)]))
    accept("create", appointment(new_guid(), resources=[("R2", BOB)]))
    graph_state.fail_item(BOB, status=400)
    summary = push()
    assert (summary.created, summary.failed) == (1, 1)
    assert len(graph_state.events(ANN)) == 1 and graph_state.events(BOB) == []
    error = SyncLogEntry.objects.get(kind=SyncLogEntry.Kind.ERROR)
    assert error.message.startswith("Could not create the Outlook event")
    assert error.resource.resource_no == "R2"
    assert not PendingSync.objects.exists()  # permanent: not retried


def test_an_unknown_mailbox_is_logged_with_the_hint(graph_state, exchange):
    from exchange_sync.models import Resource

    Resource.objects.create(source_app="BCPROD", resource_no="R9", email="gone@contoso.test",
                            sync_enabled=True)
    accept("create", appointment(new_guid(), resources=[("R9", "gone@contoso.test")]))
    assert push().failed == 1
    error = SyncLogEntry.objects.get(kind=SyncLogEntry.Kind.ERROR)
    assert "mailbox" in error.hint.lower()


def test_many_changes_go_out_in_batches_of_twenty(graph_state, ann, bob):
    for number in range(30):
        accept("create", appointment(new_guid(), resources=[("R1", ANN), ("R2", BOB)],
                                     start=BASE + timedelta(hours=number)))
    graph_state.reset_counters()
    summary = push()
    assert summary.created == 60
    assert graph_state.request_count == 3  # 60 creates, 20 a batch
    assert graph_state.batch_items == 60
    assert len(graph_state.events(ANN)) == len(graph_state.events(BOB)) == 30


def test_all_day_appointments_start_and_end_at_midnight(graph_state, ann):
    accept("create", appointment(new_guid(), resources=[("R1", ANN)], is_all_day=True,
                                 start=datetime(2030, 3, 4, 7, tzinfo=UTC), hours=30))
    push()
    event = only_event(graph_state, ANN)
    assert event["isAllDay"] is True
    assert event["start"]["dateTime"].startswith("2030-03-04T00:00:00")
    assert event["end"]["dateTime"].startswith("2030-03-06T00:00:00")


def test_nothing_is_pushed_while_exchange_sync_is_off(graph_state, ann, exchange):
    exchange.enabled = False
    exchange.save()
    accept("create", appointment(new_guid(), resources=[("R1", ANN)]))
    assert not PendingSync.objects.exists()
    assert "off" in str(push())
    assert graph_state.events(ANN) == []


def test_payload_json_is_what_graph_expects(graph_server, graph_state, ann):
    accept("create", appointment(new_guid(), resources=[("R1", ANN)]))
    graph_server.reset()
    push()
    [create] = [item for body in batch_bodies(graph_server) for item in body["requests"]]
    assert create["method"] == "POST" and create["url"] == f"/users/{ANN}/events"
    assert set(create["body"]) >= {"subject", "body", "start", "end", "isAllDay", "showAs",
                                   "importance", "categories", "transactionId",
                                   "singleValueExtendedProperties"}
    assert 'IdType="ImmutableId"' in create["headers"]["Prefer"]
    json.dumps(create)  # plain JSON all the way down
