"""Delta rounds against the fake Graph: the first (full) round, nextLink paging, the deltaLink
stored only after applying (a failure mid-paging applies nothing), incremental rounds, removals,
an expired delta link (410 → full round reconciled against the links), merged duplicates, one
round per mailbox at a time, the debounce, and the every-minute task."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from connectors.models import Appointment, AppointmentEvent
from exchange_sync import tasks
from exchange_sync.inbound import run_round, schedule_round
from exchange_sync.inbound import schedule as inbound_schedule
from exchange_sync.inbound.mapping import appointment_guid
from exchange_sync.inbound.read import DeltaRead
from exchange_sync.models import EventLink, LinkOrigin, MailboxState, Resource, SyncLogEntry

from . import task_queue
from .outbound_support import APP, at, configure_exchange, resource

pytestmark = pytest.mark.django_db

ANN = "ann@contoso.test"


@pytest.fixture
def exchange(graph_server):
    return configure_exchange(debounce_s=0)


@pytest.fixture
def ann(graph_state, exchange) -> Resource:
    return resource(graph_state, "R1", ANN)


def outlook(graph_state, subject: str, hours: float = 2, **fields: Any) -> dict[str, Any]:
    """An event the mailbox owner makes in Outlook (busy, normal: shared by default)."""
    return graph_state.outlook_create(ANN, subject=subject, start=at(hours),
                                      end=at(hours + 1), **fields)


def block(ann: Resource, event: dict[str, Any]) -> Appointment:
    return Appointment.objects.get(guid=appointment_guid(ann, event["id"]))


def ok_round(ann: Resource, **options: Any):
    summary = run_round(ann, **options)
    assert summary.status == "ok", summary
    return summary


def state(ann: Resource) -> MailboxState:
    return MailboxState.objects.get(resource=ann)


def delta_calls(graph_state) -> list[str]:
    return [call.url for call in graph_state.calls if "calendarView/delta" in call.url]


def test_the_first_round_reads_the_window_in_full_and_creates_the_shared_events(
        graph_state, ann):
    shared = outlook(graph_state, "Site visit Rotterdam", categories=["Travel", "Client"],
                     body={"contentType": "html", "content": "<html><head><style>p {color: red}"
                           "</style></head><body><p>Bring&nbsp;<b>boots</b></p></body></html>"})
    outlook(graph_state, "Lunch", hours=5, showAs="free")  # free: not shared by default

    summary = ok_round(ann)

    assert summary.full and summary.counts.created == 1 and summary.counts.unshared == 1
    appointment = block(ann, shared)
    data = appointment.data
    assert (appointment.source_app, data["subject"], data["body"], data["category"]) == (
        APP, "Site visit Rotterdam", "Bring boots", "Travel")
    assert data["resources"] == [{"resource_no": "R1", "email": ANN}]
    assert data["start"].endswith("Z") and data["is_all_day"] is False
    assert data["field_values"] == {"outlook_show_as": "busy", "outlook_sensitivity": "normal",
                                    "outlook_event_type": "singleInstance"}
    event = AppointmentEvent.objects.get(appointment=appointment)
    assert event.source == "exchange" and event.client is None and event.action == "create"
    assert event.event_id == f"exchange:{ann.pk}:{shared['id']}:{shared['changeKey']}"
    link = EventLink.objects.get(appointment=appointment)
    assert (link.origin, link.event_id, link.change_key) == (
        LinkOrigin.OUTLOOK, shared["id"], shared["changeKey"])
    stored = state(ann)
    assert stored.delta_link and "$deltatoken=" in stored.delta_link
    assert stored.last_round_ok is True and stored.last_full_round_at is not None
    assert stored.window_start <= timezone.now() - timedelta(days=29)
    [call] = delta_calls(graph_state)
    assert "startDateTime=" in call and "endDateTime=" in call
    created = SyncLogEntry.objects.get(kind="created")
    assert created.direction == "inbound" and created.appointment == appointment


def test_it_follows_every_next_link_with_a_small_page_size(graph_state, ann):
    for number in range(7):
        outlook(graph_state, f"Job {number}", hours=2 + number)

    summary = ok_round(ann, page_size=2)

    assert (summary.pages, summary.read, summary.counts.created) == (4, 7, 7)
    assert sum("$skiptoken=" in url for url in delta_calls(graph_state)) == 3
    assert Appointment.objects.count() == 7


def test_a_failure_mid_paging_applies_nothing_and_keeps_the_delta_link(graph_state, ann):
    kept = outlook(graph_state, "Kept")
    doomed = outlook(graph_state, "Doomed", hours=4)
    ok_round(ann)
    before = state(ann).delta_link
    graph_state.outlook_delete(ANN, doomed["id"])
    for number in range(3):
        outlook(graph_state, f"New {number}", hours=10 + number)
    graph_state.fail_item("$skiptoken", status=500)

    summary = run_round(ann, page_size=1)

    assert summary.status == "failed" and "HTTP 500" in summary.error
    after = state(ann)
    assert after.delta_link == before
    assert after.last_round_ok is False and "HTTP 500" in after.last_error
    assert after.round_due_at is not None  # a transient failure: retried by the schedule
    assert Appointment.objects.count() == 2 and not block(ann, doomed).deleted
    assert SyncLogEntry.objects.filter(kind="error").count() == 1

    retried = ok_round(ann, page_size=1)

    assert (retried.counts.created, retried.counts.deleted) == (3, 1)
    assert block(ann, doomed).deleted and not block(ann, kept).deleted
    assert state(ann).last_round_ok is True and state(ann).last_error == ""


def test_an_incremental_round_sees_only_the_changes(graph_state, ann):
    first = outlook(graph_state, "Inspection")
    outlook(graph_state, "Training", hours=6)
    ok_round(ann)
    graph_state.outlook_update(ANN, first["id"], subject="Inspection (moved)", start=at(3),
                               end=at(5))

    summary = ok_round(ann)

    assert not summary.full and summary.read == 1 and summary.counts.updated == 1
    data = block(ann, first).data
    assert data["subject"] == "Inspection (moved)"
    assert data["start"] == at(3)["dateTime"][:19] + "Z"
    assert ok_round(ann).read == 0


def test_a_removed_event_deletes_its_appointment(graph_state, ann):
    gone = outlook(graph_state, "Cancelled call")
    ok_round(ann)
    graph_state.outlook_delete(ANN, gone["id"])

    summary = ok_round(ann)

    assert summary.counts.deleted == 1
    appointment = block(ann, gone)
    assert appointment.deleted
    assert appointment.events.filter(action="delete", source="exchange").exists()
    assert not EventLink.objects.filter(appointment=appointment).exists()


def test_a_cancelled_event_counts_as_a_deletion(graph_state, ann):
    cancelled = outlook(graph_state, "Team meeting")
    ok_round(ann)
    graph_state.outlook_update(ANN, cancelled["id"], isCancelled=True)

    assert ok_round(ann).counts.deleted == 1
    assert block(ann, cancelled).deleted


def test_an_expired_delta_link_makes_a_full_round_reconciled_against_the_links(
        graph_state, ann):
    stays = outlook(graph_state, "Stays")
    deleted = outlook(graph_state, "Deleted while the link was lost", hours=4)
    ok_round(ann)
    old_link = state(ann).delta_link
    graph_state.expire_delta_tokens()
    graph_state.outlook_delete(ANN, deleted["id"])
    added = outlook(graph_state, "Added meanwhile", hours=8)

    summary = ok_round(ann)

    assert summary.full and "expired" in summary.note
    assert (summary.counts.created, summary.counts.deleted, summary.counts.skipped) == (1, 1, 1)
    assert block(ann, deleted).deleted and not block(ann, stays).deleted
    assert block(ann, added).data["subject"] == "Added meanwhile"
    assert state(ann).delta_link not in ("", old_link)
    assert any("startDateTime=" in url for url in delta_calls(graph_state)[1:])


def test_duplicate_ids_across_pages_are_merged_last_one_wins():
    read = DeltaRead(full=False, window=(timezone.now(), timezone.now()))
    read.add({"id": "A", "subject": "first"})
    read.add({"id": "B", "subject": "kept"})
    read.add({"id": "A", "subject": "second"})
    read.add({"id": "B", "@removed": {"reason": "deleted"}})
    read.add({"id": "C", "@removed": {"reason": "deleted"}})
    read.add({"id": "C", "subject": "back"})

    assert read.changed == {"A": {"id": "A", "subject": "second"},
                            "C": {"id": "C", "subject": "back"}}
    assert read.removed == {"B"} and read.items == 6


def test_only_one_round_runs_per_mailbox_at_a_time(graph_state, ann):
    outlook(graph_state, "Waiting")
    owner = inbound_schedule.acquire(ann.pk)
    assert owner is not None

    busy = run_round(ann)

    assert busy.status == "busy" and "busy" in str(busy)
    assert state(ann).round_due_at is not None  # the round after it catches the change
    assert not Appointment.objects.exists()
    inbound_schedule.release(ann.pk, owner)
    assert ok_round(ann).counts.created == 1
    assert state(ann).round_due_at is None and state(ann).round_owner == ""


def test_an_expired_lease_does_not_block_the_mailbox(graph_state, ann):
    outlook(graph_state, "After a crash")
    inbound_schedule.acquire(ann.pk)
    MailboxState.objects.filter(resource=ann).update(
        round_lock_until=timezone.now() - timedelta(seconds=1))

    assert ok_round(ann).counts.created == 1


def test_schedule_round_debounces_notifications_into_one_due_time(
        graph_state, ann, django_capture_on_commit_callbacks):
    configure_exchange(debounce_s=5)
    task_queue.purge()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(10):
            schedule_round(ann.pk)

    due = state(ann).round_due_at
    assert due is not None
    assert timezone.now() + timedelta(seconds=3) < due <= timezone.now() + timedelta(seconds=5)
    round_task = ("exchange_sync.tasks.delta_round_task", (ann.pk,))
    assert task_queue.taken() == [round_task]  # one task for the ten notifications
    assert not state(ann).full_round_needed

    with django_capture_on_commit_callbacks(execute=True):
        schedule_round(ann.pk, full=True, delay_s=0)

    assert state(ann).round_due_at < due and state(ann).full_round_needed
    assert task_queue.taken() == [round_task]


def test_the_queued_task_runs_the_due_round(graph_state, ann):
    outlook(graph_state, "From a notification")
    schedule_round(ann.pk, delay_s=0)

    result = tasks.delta_round_task(ann.pk)

    assert "1 created" in result
    assert tasks.delta_round_task(ann.pk).endswith("no round due now (run already, or the "
                                                   "schedule runs it)")
    MailboxState.objects.filter(resource=ann).update(  # a failed round's retry, a minute on
        round_due_at=timezone.now() + timedelta(seconds=60))
    assert tasks.delta_round_task(ann.pk).endswith("no round due now (run already, or the "
                                                   "schedule runs it)")
    assert state(ann).round_due_at is not None


def test_the_every_minute_task_runs_due_safety_and_window_rounds(graph_state, ann):
    outlook(graph_state, "First")
    assert "full: " in tasks.delta_rounds_task()  # never read: a full round
    assert tasks.delta_rounds_task() == "No round due."

    MailboxState.objects.filter(resource=ann).update(
        last_round_at=timezone.now() - timedelta(minutes=16))
    assert tasks.delta_rounds_task().startswith("safety: resource")

    MailboxState.objects.filter(resource=ann).update(round_due_at=timezone.now())
    assert tasks.delta_rounds_task().startswith("due: resource")

    moved = state(ann).window_start - timedelta(days=1)
    MailboxState.objects.filter(resource=ann).update(window_start=moved)
    line = tasks.delta_rounds_task()
    assert line.startswith("window: resource") and "full round" in line
    assert state(ann).window_start == moved + timedelta(days=1)


def test_a_mailbox_that_keeps_failing_waits_for_the_safety_round(graph_state, ann):
    graph_state.blocked_mailboxes.add(ANN)

    assert "failed: Microsoft Graph answered HTTP 403" in tasks.delta_rounds_task()

    failing = state(ann)
    assert failing.last_round_ok is False and failing.full_round_needed
    assert "New-ApplicationAccessPolicy" in failing.last_error  # the hint: what to do
    assert failing.round_due_at is None  # permanent: not retried every minute
    assert tasks.delta_rounds_task() == "No round due."
    error = SyncLogEntry.objects.get(kind="error")
    assert "nothing was applied" in error.message and "access policy" in error.hint

    graph_state.blocked_mailboxes.clear()
    MailboxState.objects.filter(resource=ann).update(
        last_round_at=timezone.now() - timedelta(minutes=16))
    assert tasks.delta_rounds_task().startswith("full: resource")
    assert state(ann).last_round_ok is True and not state(ann).full_round_needed
