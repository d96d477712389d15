"""The mass-deletion guard: many deletions in one round are held (the rest of the round is
applied), an administrator confirms or discards them (in the admin too), an empty full read
never deletes, and rounds below the minimum delete as usual."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.messages.storage.fallback import FallbackStorage
from django.utils import timezone

from connectors.intake import IncomingEvent, events_accept
from connectors.models import Appointment, Dispatch
from exchange_sync.admin_mailboxes import MailboxStateAdmin
from exchange_sync.inbound import (
    MailboxBusy,
    held_deletions_confirm,
    held_deletions_discard,
    run_round,
)
from exchange_sync.inbound import schedule as inbound_schedule
from exchange_sync.inbound.mapping import appointment_guid
from exchange_sync.models import EventLink, MailboxState, PendingSync, Resource, SyncLogEntry
from exchange_sync.outbound.push import push_all
from tests.connectors.pipeline_factories import ConnectorFactory

from .factories import staff_user
from .outbound_support import APP, appointment, at, configure_exchange, resource

pytestmark = pytest.mark.django_db

ANN = "ann@contoso.test"


@pytest.fixture
def exchange(graph_server):
    return configure_exchange(debounce_s=0)  # guard defaults: more than 50 %, at least 5


@pytest.fixture
def ann(graph_state, exchange) -> Resource:
    return resource(graph_state, "R1", ANN)


@pytest.fixture
def hook(db):
    return ConnectorFactory(source_app=APP)


def owner_events(graph_state, count: int) -> list[dict[str, Any]]:
    return [graph_state.outlook_create(ANN, subject=f"Job {n}", start=at(2 + 2 * n),
                                       end=at(3 + 2 * n)) for n in range(count)]


def ok_round(ann: Resource):
    summary = run_round(ann)
    assert summary.status == "ok", summary
    return summary


def state(ann: Resource) -> MailboxState:
    return MailboxState.objects.get(resource=ann)


def live(ann: Resource) -> int:
    return Appointment.objects.filter(deleted=False, source_app=APP).count()


def test_deleting_six_of_eight_is_held_and_the_rest_of_the_round_applied(graph_state, ann):
    events = owner_events(graph_state, 8)
    ok_round(ann)
    for event in events[:6]:
        graph_state.outlook_delete(ANN, event["id"])
    graph_state.outlook_update(ANN, events[7]["id"], subject="Renamed")

    summary = ok_round(ann)

    assert (summary.counts.held, summary.counts.deleted, summary.counts.updated) == (6, 0, 1)
    assert live(ann) == 8
    held = state(ann)
    assert sorted(held.held_deletions) == sorted(
        EventLink.objects.filter(event_id__in=[e["id"] for e in events[:6]])
        .values_list("pk", flat=True))
    assert held.held_at is not None and "6 of the mailbox's 8" in held.held_reason
    entry = SyncLogEntry.objects.get(kind="held")
    assert entry.message.startswith("Held 6 deletion(s)") and "confirm" in entry.hint
    renamed = Appointment.objects.get(guid=appointment_guid(ann, events[7]["id"]))
    assert renamed.data["subject"] == "Renamed"
    assert ok_round(ann).counts.held == 0  # the next round does not hold them again


def test_confirming_applies_the_held_deletions(graph_state, ann, hook):
    events = owner_events(graph_state, 8)
    ok_round(ann)
    for event in events[:6]:
        graph_state.outlook_delete(ANN, event["id"])
    ok_round(ann)

    assert held_deletions_confirm(state=state(ann), user=staff_user()) == 6

    assert live(ann) == 2
    assert Dispatch.objects.filter(action="delete", connector=hook).count() == 6
    cleared = state(ann)
    assert (cleared.held_deletions, cleared.held_at, cleared.held_reason) == ([], None, "")
    assert "viewer confirmed 6 held deletion(s)" in SyncLogEntry.objects.get(
        kind="confirmed").message
    assert EventLink.objects.count() == 2


def test_discarding_keeps_the_appointments_and_pushes_our_events_again(graph_state, ann):
    guids = [str(uuid.uuid4()) for _ in range(8)]
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    for number, guid in enumerate(guids):
        events_accept(client=None, events=[IncomingEvent(
            event_id=str(uuid.uuid4()), action="create",
            occurred_at=timezone.now() - timedelta(minutes=5),
            appointment=appointment(guid, resources=[("R1", ANN)],
                                    start=start + timedelta(hours=2 * number)))])
    push_all(budget_s=30)
    ok_round(ann)
    for event in graph_state.events(ANN)[:6]:
        graph_state.outlook_delete(ANN, event["id"])
    assert ok_round(ann).counts.held == 6

    assert held_deletions_discard(state=state(ann), user=staff_user()) == 6

    assert live(ann) == 8 and PendingSync.objects.count() == 6
    assert EventLink.objects.filter(event_id="").count() == 6
    assert "discarded 6 held deletion(s)" in SyncLogEntry.objects.get(kind="confirmed").message
    summary = push_all(budget_s=30)
    assert summary.created == 6
    assert len(graph_state.events(ANN)) == 8
    assert ok_round(ann).counts.skipped == 6  # the new events come back as echoes
    assert state(ann).held_deletions == []


def test_deletions_below_the_minimum_are_applied(graph_state, ann):
    events = owner_events(graph_state, 4)
    ok_round(ann)
    for event in events[:3]:  # 75 %, but fewer than 5
        graph_state.outlook_delete(ANN, event["id"])

    summary = ok_round(ann)

    assert (summary.counts.deleted, summary.counts.held) == (3, 0)
    assert live(ann) == 1 and state(ann).held_deletions == []


def test_deletions_below_the_share_are_applied(graph_state, ann):
    configure_exchange(debounce_s=0, mass_delete_minimum=2)
    events = owner_events(graph_state, 8)
    ok_round(ann)
    for event in events[:4]:  # exactly 50 %: not more than the guard's share
        graph_state.outlook_delete(ANN, event["id"])

    assert ok_round(ann).counts.deleted == 4


def test_an_empty_full_read_never_deletes(graph_state, ann):
    events = owner_events(graph_state, 2)
    ok_round(ann)
    for event in events:
        graph_state.outlook_delete(ANN, event["id"])
    graph_state.expire_delta_tokens()

    summary = ok_round(ann)

    assert summary.full and summary.counts.deleted == 0 and summary.counts.held == 2
    assert live(ann) == 2
    assert "listed no event at all" in state(ann).held_reason


def test_a_decision_waits_while_a_round_holds_the_mailbox(graph_state, ann):
    events = owner_events(graph_state, 6)
    ok_round(ann)
    for event in events:
        graph_state.outlook_delete(ANN, event["id"])
    ok_round(ann)
    owner = inbound_schedule.acquire(ann.pk)

    with pytest.raises(MailboxBusy, match="try again in a minute"):
        held_deletions_confirm(state=state(ann), user=staff_user())

    inbound_schedule.release(ann.pk, owner)
    assert len(state(ann).held_deletions) == 6


# -- the admin -----------------------------------------------------------------------------------
def admin_request(rf, user):
    request = rf.post("/admin/exchange_sync/mailboxstate/")
    request.user = user
    request.session = {}
    request._messages = FallbackStorage(request)
    return request


def messages_of(request) -> list[str]:
    return [str(message) for message in request._messages]


def test_the_mailbox_admin_passes_its_checks_and_shows_the_round_state(graph_state, ann, rf):
    owner_events(graph_state, 6)
    ok_round(ann)
    model_admin = MailboxStateAdmin(MailboxState, admin.site)
    assert model_admin.check() == []
    row = state(ann)
    assert model_admin.last_round(row).endswith("ago") and model_admin.lock(row) == "free"
    assert model_admin.has_delta_link(row) is True and model_admin.held_count(row) == 0
    assert model_admin.window(row).count("-") >= 4
    user = staff_user("exchange_sync.view_mailboxstate", "exchange_sync.change_mailboxstate")
    actions = model_admin.get_actions(admin_request(rf, user))
    assert {"confirm_held_deletions", "discard_held_deletions", "run_round_now",
            "run_full_round_now"} <= set(actions)
    viewer = staff_user("exchange_sync.view_mailboxstate", username="reader")
    assert "confirm_held_deletions" not in model_admin.get_actions(admin_request(rf, viewer))


def test_the_admin_actions_confirm_discard_and_queue_rounds(graph_state, ann, rf):
    events = owner_events(graph_state, 6)
    ok_round(ann)
    for event in events:
        graph_state.outlook_delete(ANN, event["id"])
    ok_round(ann)
    model_admin = MailboxStateAdmin(MailboxState, admin.site)
    user = staff_user("exchange_sync.view_mailboxstate", "exchange_sync.change_mailboxstate")
    assert "Job" not in str(model_admin.held_appointments(state(ann)))  # no subjects shown

    request = admin_request(rf, user)
    model_admin.discard_held_deletions(request, MailboxState.objects.all())
    assert messages_of(request) == ["Kept 6 held appointment(s)."]
    assert live(ann) == 6

    request = admin_request(rf, user)
    model_admin.run_full_round_now(request, MailboxState.objects.all())
    assert messages_of(request) == ["Queued a full round for 1 mailbox(es)."]
    assert state(ann).full_round_needed and state(ann).round_due_at is not None

    request = admin_request(rf, user)
    model_admin.confirm_held_deletions(request, MailboxState.objects.all())
    assert messages_of(request) == ["Deleted 0 held appointment(s)."]
