"""Exchange sync end to end: the web server and a qcluster as real processes, the fake
Microsoft Graph over HTTPS in the test process, calling the app's notification endpoints back.

One deployment serves the module (tests/e2e/exchange_support.py: web first, PUBLIC_BASE_URL =
its URL, Exchange configured with a 1 s debounce, then the cluster); every test has its own
resources, mailboxes and appointments, so the tests do not depend on their order. Write-backs
to the back office go to a signed webhook receiver. See docs/EXCHANGE.md for what is tested.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes import graph as graph_fake
from tests.fakes import webhook_receiver
from tests.fakes.server import FakeServer
from tests.fakes.tls import TestCA

from .exchange_support import (
    LIFECYCLE_PATH,
    NOTIFICATIONS_PATH,
    SECRET,
    SOURCE_APP,
    Mailbox,
    add_mailbox,
    add_mailboxes,
    appointment,
    appointments_of,
    change_notifications,
    day_at,
    dispatch_actions,
    exchange_deployment,
    exchange_events,
    fake_subscriptions,
    graph_time,
    graph_writes,
    hook_messages,
    links,
    mailbox_state,
    new_guid,
    outlook_times,
    planner_event,
    quiet,
    run_in_app,
    settle,
    subscription_row,
    sync_log,
    task_runs,
    utc_text,
    wait_first_round,
    wait_hook,
    wait_mailbox,
)
from .harness import App

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SUBSCRIPTION_MINUTES = 4200  # what the app asks Graph for (docs/EXCHANGE.md, Timing)


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServer]:
    ca = TestCA.create(tmp_path_factory.mktemp("exchange-ca"))
    with graph_fake.make(ca) as server:
        yield server


@pytest.fixture(scope="module")
def hook() -> Iterator[FakeServer]:
    with webhook_receiver.make(secrets=[SECRET]) as server:
        yield server


@pytest.fixture(scope="module")
def app(graph: FakeServer, hook: FakeServer,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with exchange_deployment(tmp_path_factory.mktemp("e2e-exchange"), graph=graph,
                             ca_file=graph.state.ca_file, receiver=hook) as app:
        yield app


@pytest.fixture
def state(graph: FakeServer) -> Iterator[graph_fake.GraphState]:
    """The fake's state; faults a test switches on are switched off after it."""
    yield graph.state
    graph.state.drop_notifications = False


def own_event(app: App, state: graph_fake.GraphState, mailbox: Mailbox, *, start: datetime,
              subject: str = "Boiler service") -> tuple[str, dict[str, Any]]:
    """A planner appointment for the mailbox's resource, posted through the API, whose event
    DimeConnect created in the mailbox; returns (guid, the event), the mailbox settled."""
    guid = new_guid()
    app.accept_events([planner_event("create", guid, [mailbox], start=start, subject=subject)])
    [event] = wait_mailbox(app, state, mailbox, 1)
    settle(app, state, mailbox, new=1)  # our create's notification: an echo
    return guid, event


# --- 1. handshake ---------------------------------------------------------------------------


def test_each_synced_mailbox_gets_a_subscription_that_graph_validated(app, state):
    mailboxes, _ = add_mailboxes(app, state, "R-HS1", "R-HS2", subscribe=False)
    assert all(not fake_subscriptions(state, m) for m in mailboxes)

    summary = run_in_app(app, """
        import json
        from exchange_sync.tasks import renew_subscriptions_task
        print(json.dumps(renew_subscriptions_task()))
    """)

    assert summary == "2 created, 0 renewed, 0 removed, 0 failed."
    now = datetime.now(UTC)
    for mailbox in mailboxes:
        # The fake keeps a subscription only after the app's endpoint echoed its
        # validationToken (while answering the POST).
        [subscription] = fake_subscriptions(state, mailbox)
        assert subscription.notification_url == app.web_url + NOTIFICATIONS_PATH
        assert subscription.lifecycle_url == app.web_url + LIFECYCLE_PATH
        assert subscription.resource == f"/users/{mailbox.user_id}/events"
        assert subscription.change_type == "created,updated,deleted"
        minutes = (subscription.expiration - now).total_seconds() / 60
        assert SUBSCRIPTION_MINUTES - 2 < minutes <= SUBSCRIPTION_MINUTES
        row = subscription_row(app, mailbox)
        assert row is not None and row["subscription_id"] == subscription.id
        wait_first_round(app, mailbox)  # a full round follows every new subscription
        assert mailbox_state(app, mailbox)["delta_link"].startswith(
            f"{app.env['GRAPH_BASE_URL']}/users/{mailbox.user_id}/calendarView/delta?")


# --- 2. planner → Outlook -------------------------------------------------------------------


def test_planner_changes_reach_the_right_mailboxes_through_the_api_and_the_doorbell(app, state):
    synced = add_mailbox(app, state, "R-OUT1")
    excluded = add_mailbox(app, state, "R-OUT2", rules=[("category", "not_equals", "SERVICE")])
    guid, start = new_guid(), day_at(3, 8)
    both = [synced, excluded]

    posted = datetime.now(UTC)
    app.accept_events([planner_event("create", guid, both, start=start, subject="Boiler service")])
    [created] = wait_mailbox(app, state, synced, 1)
    assert created["subject"] == "Boiler service"
    assert outlook_times(created) == (utc_text(start), utc_text(start + timedelta(hours=2)))
    assert created["showAs"] == "busy" and created["categories"] == ["SERVICE"]
    settle(app, state, synced, new=1)
    assert task_runs(app, "exchange: push", posted) >= 1  # the doorbell, not the schedule

    moved = start + timedelta(days=1, hours=2)
    posted = datetime.now(UTC)
    app.accept_events([planner_event("update", guid, both, start=moved, hours=3,
                                     subject="Boiler service, moved")])
    app.wait(lambda: outlook_times(state.events(synced.email)[0])[0] == utc_text(moved),
             timeout=30, what="the event to move")
    [updated] = state.events(synced.email)
    assert updated["id"] == created["id"] and updated["subject"] == "Boiler service, moved"
    assert outlook_times(updated) == (utc_text(moved), utc_text(moved + timedelta(hours=3)))
    settle(app, state, synced, new=1)
    assert task_runs(app, "exchange: push", posted) >= 1

    app.accept_events([planner_event("delete", guid, both, start=moved, hours=3)])
    wait_mailbox(app, state, synced, 0)
    settle(app, state, synced, new=1)

    assert state.events(excluded.email) == []
    assert {m: graph_writes(state, excluded, m) for m in ("POST", "PATCH", "DELETE")} == {
        "POST": [], "PATCH": [], "DELETE": []}
    assert [len(graph_writes(state, synced, m)) for m in ("POST", "PATCH", "DELETE")] == [1, 1, 1]
    assert exchange_events(app, guid) == []  # our own writes never came back as changes


# --- 3. notifications → delta rounds ------------------------------------------------------


def test_an_outlook_change_is_notified_and_becomes_an_appointment_written_back(app, state, hook):
    mailbox = add_mailbox(app, state, "R-IN1")
    start = day_at(4, 13)
    event = state.outlook_create(mailbox.email, subject="Dentist", showAs="busy",
                                 body={"contentType": "text", "content": "Check-up"},
                                 start=graph_time(start),
                                 end=graph_time(start + timedelta(minutes=45)))
    settle(app, state, mailbox, new=1)

    [made] = appointments_of(app, mailbox)
    data = made["data"]
    assert (data["subject"], data["body"]) == ("Dentist", "Check-up")
    assert (data["start"], data["end"]) == (utc_text(start),
                                            utc_text(start + timedelta(minutes=45)))
    assert data["resources"] == [mailbox.entry] and data["source_app"] == SOURCE_APP
    assert [(link["origin"], link["event_id"]) for link in links(app, mailbox)] == [
        ("outlook", event["id"])]
    assert [e["action"] for e in exchange_events(app, made["guid"])] == ["create"]
    [message] = wait_hook(app, hook, made["guid"], ["appointment.created"])
    assert message["data"]["subject"] == "Dentist"
    assert message["data"]["start"] == utc_text(start)
    # The owner's event is never written by the outbound side.
    assert len(state.events(mailbox.email)) == 1
    assert [graph_writes(state, mailbox, m) for m in ("POST", "PATCH", "DELETE")] == [[], [], []]


# --- 4. privacy -----------------------------------------------------------------------------

PRIVATE_WORDS = ("Zephyrine", "Kumquat", "Marmalade", "Obsidian", "Vellichor")
UNSHARED_WORDS = ("Wobbleberry", "Quokkafest", "Snorkelwig", "Tentacula")
SEARCHED_TABLES = ("connectors_appointment", "connectors_appointmentevent", "connectors_dispatch",
                   "connectors_attempt", "exchange_sync_synclogentry", "exchange_sync_eventlink",
                   "exchange_sync_notification", "exchange_sync_mailboxstate")


def stored_text(app: App) -> str:
    return "\n".join(repr(app.query(f"SELECT * FROM {table}")) for table in SEARCHED_TABLES)


def test_privacy_filters_share_only_what_the_mailbox_shares_and_private_events_as_busy(
        app, state, hook):
    mailbox = add_mailbox(app, state, "R-PRIV", privacy_override=True,
                          shared_show_as=["busy", "oof"],
                          shared_sensitivities=["normal", "private"])
    start = day_at(5, 7)

    def create(hour: int, subject: str, **fields: object) -> dict:
        return state.outlook_create(mailbox.email, subject=subject,
                                    start=graph_time(start + timedelta(hours=hour)),
                                    end=graph_time(start + timedelta(hours=hour + 1)), **fields)

    create(0, "Wobbleberry gym", showAs="free")  # show-as not shared
    create(1, "Tentacula maybe", showAs="tentative")  # shared by default, not by this mailbox
    create(2, "Quokkafest", showAs="busy", sensitivity="personal")  # sensitivity not shared
    create(3, "Snorkelwig board", showAs="busy", sensitivity="confidential")  # not shared here
    private = create(4, "Zephyrine Kumquat", showAs="busy", sensitivity="private",
                     body={"contentType": "html", "content": "<p>Marmalade Obsidian</p>"},
                     location={"displayName": "Vellichor Street 1"})
    shared = create(5, "Conference Lisbon", showAs="oof")  # the control: shared in full
    settle(app, state, mailbox, new=6)

    made = appointments_of(app, mailbox)
    assert len(made) == 2
    block, full = made if made[0]["data"]["subject"] == "Busy" else made[::-1]
    assert block["data"]["subject"] == "Busy"
    assert (block["data"]["body"], block["data"]["category"]) == ("", "")
    assert block["data"]["field_values"] == {"outlook_show_as": "busy",
                                             "outlook_sensitivity": "private"}
    assert (block["data"]["start"], block["data"]["end"]) == outlook_times(private)
    assert full["data"]["subject"] == "Conference Lisbon"
    assert {link["event_id"] for link in links(app, mailbox)} == {private["id"], shared["id"]}

    wait_hook(app, hook, block["guid"], ["appointment.created"])
    wait_hook(app, hook, full["guid"], ["appointment.created"])
    app.wait(lambda: app.statuses(SOURCE_APP).keys() <= {"succeeded"}, timeout=30,
             what="every dispatch delivered")
    text = stored_text(app)
    received = "\n".join(d.body.decode() for d in hook.state.deliveries)
    assert "Conference Lisbon" in text and "Conference Lisbon" in received  # the search works
    for word in PRIVATE_WORDS + UNSHARED_WORDS:
        assert word not in text, f"{word!r} is stored in the app's database"
        assert word not in received, f"{word!r} reached the back office"


# --- 5. no echo, no loop --------------------------------------------------------------------


def test_our_own_writes_are_not_echoed_and_ten_back_and_forth_changes_converge(app, state, hook):
    mailbox = add_mailbox(app, state, "R-ECHO")
    start = day_at(6, 8)
    guid, event = own_event(app, state, mailbox, start=start)
    assert exchange_events(app, guid) == []
    assert graph_writes(state, mailbox, "PATCH") == []

    app.accept_events([planner_event("update", guid, [mailbox], start=start,
                                     subject="Boiler service, with parts")])
    app.wait(lambda: state.events(mailbox.email)[0]["subject"] == "Boiler service, with parts",
             timeout=30, what="the planner's update in Outlook")
    settle(app, state, mailbox, new=1)
    assert exchange_events(app, guid) == []
    assert len(graph_writes(state, mailbox, "PATCH", event["id"])) == 1

    for step in range(10):
        moved = start + timedelta(hours=step + 1)
        end = moved + timedelta(hours=2)
        if step % 2 == 0:  # the planner moves it (API)
            app.accept_events([planner_event("update", guid, [mailbox], start=moved,
                                             subject="Boiler service, with parts")])
            app.wait(lambda m=moved: outlook_times(state.events(mailbox.email)[0])[0]
                     == utc_text(m), timeout=30, what=f"step {step}: the move in Outlook")
        else:  # the owner moves our event in Outlook
            state.outlook_update(mailbox.email, event["id"], start=graph_time(moved),
                                 end=graph_time(end))
        settle(app, state, mailbox, new=1)
        data = appointment(app, guid)["data"]
        assert (data["start"], data["end"]) == (utc_text(moved), utc_text(end)), step

    [final] = state.events(mailbox.email)
    assert final["id"] == event["id"]
    assert outlook_times(final) == (appointment(app, guid)["data"]["start"],
                                    appointment(app, guid)["data"]["end"])
    assert len(graph_writes(state, mailbox, "PATCH", event["id"])) == 1 + 5  # planner moves only
    assert [e["action"] for e in exchange_events(app, guid)] == ["update"] * 5  # Outlook moves
    wait_hook(app, hook, guid, ["appointment.created"] + ["appointment.updated"] * 11)

    requests, change_key = state.request_count, final["changeKey"]
    time.sleep(4)  # room for a loop, were there one
    assert quiet(app, mailbox)
    assert state.request_count == requests
    assert state.events(mailbox.email)[0]["changeKey"] == change_key
    # One notification per change of the event: the create, the update and the ten moves.
    assert len(change_notifications(state, mailbox)) == 1 + 1 + 10


# --- 6. a moved event writes back -----------------------------------------------------------


def test_moving_our_event_in_outlook_updates_the_appointment_and_the_back_office(
        app, state, hook):
    mailbox = add_mailbox(app, state, "R-MOVE")
    start = day_at(7, 9)
    guid, event = own_event(app, state, mailbox, start=start)

    moved = start + timedelta(days=1, hours=-1)
    state.outlook_update(mailbox.email, event["id"], start=graph_time(moved),
                         end=graph_time(moved + timedelta(hours=3)))
    settle(app, state, mailbox, new=1)

    data = appointment(app, guid)["data"]
    new_times = (utc_text(moved), utc_text(moved + timedelta(hours=3)))
    assert (data["start"], data["end"]) == new_times
    assert data["subject"] == "Boiler service"  # only the times are taken from Outlook
    created, updated = wait_hook(app, hook, guid, ["appointment.created", "appointment.updated"])
    assert (updated["data"]["start"], updated["data"]["end"]) == new_times
    assert [e["action"] for e in exchange_events(app, guid)] == ["update"]
    assert graph_writes(state, mailbox, "PATCH") == []  # nothing written back to Outlook


# --- 7. 410 → full round --------------------------------------------------------------------


def test_an_expired_delta_link_makes_a_full_round_that_still_applies_the_change(app, state):
    mailbox = add_mailbox(app, state, "R-410")
    before = mailbox_state(app, mailbox)["last_full_round_at"]

    state.expire_delta_tokens()
    start = day_at(8, 10)
    event = state.outlook_create(mailbox.email, subject="Site visit", start=graph_time(start),
                                 end=graph_time(start + timedelta(hours=1)))
    settle(app, state, mailbox, new=1)

    [made] = appointments_of(app, mailbox)
    assert made["data"]["subject"] == "Site visit"
    assert [link["event_id"] for link in links(app, mailbox)] == [event["id"]]
    after = mailbox_state(app, mailbox)
    assert after["last_full_round_at"] > before
    assert after["last_round_ok"] and after["delta_link"]


# --- 8. lost notifications ------------------------------------------------------------------


def test_a_change_whose_notification_was_lost_is_caught_by_the_periodic_round(app, state):
    """The "exchange: delta rounds" schedule runs `delta_rounds_task` every minute; a mailbox
    whose last round is older than `safety_round_minutes` gets a safety round there. The
    mailbox's last round is aged beyond that interval and the task is run the way the schedule
    runs it (in the same process, so the schedule cannot run that round in between)."""
    mailbox = add_mailbox(app, state, "R-LOST")
    state.drop_notifications = True
    dropped = state.notifications_dropped
    start = day_at(9, 11)
    event = state.outlook_create(mailbox.email, subject="Ladder inspection",
                                 start=graph_time(start),
                                 end=graph_time(start + timedelta(hours=1)))
    assert state.notifications_dropped == dropped + 1
    time.sleep(2)  # longer than the debounce: a round, were one scheduled, would have run
    assert appointments_of(app, mailbox) == []

    lines = run_in_app(app, f"""
        import json
        from datetime import timedelta
        from django.utils import timezone
        from exchange_sync.models import MailboxState
        from exchange_sync.tasks import delta_rounds_task
        MailboxState.objects.filter(resource_id={mailbox.pk}).update(
            last_round_at=timezone.now() - timedelta(minutes=61))
        print(json.dumps(delta_rounds_task().splitlines()))
    """)

    ours = [line for line in lines if f"resource {mailbox.pk}:" in line]
    assert len(ours) == 1 and ours[0].startswith(f"safety: resource {mailbox.pk}: delta round")
    assert "1 created" in ours[0]
    [made] = appointments_of(app, mailbox)
    assert made["data"]["subject"] == "Ladder inspection"
    assert [link["event_id"] for link in links(app, mailbox)] == [event["id"]]


# --- 9. mass deletions ----------------------------------------------------------------------


def test_deleting_most_linked_events_at_once_is_held_not_applied(app, state, hook):
    mailbox = add_mailbox(app, state, "R-MASS")
    guids = [new_guid() for _ in range(6)]
    app.accept_events([planner_event("create", guid, [mailbox], start=day_at(10, 7 + n),
                                     hours=1, subject=f"Job {n}")
                       for n, guid in enumerate(guids)])
    events = wait_mailbox(app, state, mailbox, 6)
    settle(app, state, mailbox, new=6)
    for guid in guids:
        wait_hook(app, hook, guid, ["appointment.created"])

    with state.graph_lock:  # at once: one round sees all five
        for event in events[:5]:
            state.outlook_delete(mailbox.email, event["id"])
    settle(app, state, mailbox, new=5)

    held = mailbox_state(app, mailbox)
    linked = {row["id"] for row in links(app, mailbox)}
    assert len(held["held_deletions"]) == 5 and set(held["held_deletions"]) <= linked
    assert held["held_at"] is not None and "5 of the mailbox's 6" in held["held_reason"]
    assert [appointment(app, guid)["deleted"] for guid in guids] == [False] * 6
    assert all(exchange_events(app, guid) == [] for guid in guids)
    assert all(dispatch_actions(app, guid) == ["create"] for guid in guids)
    assert [[m["type"] for m in hook_messages(hook, guid)] for guid in guids] == [
        ["appointment.created"]] * 6
    assert len(sync_log(app, mailbox, "held")) == 1


# --- 10. renewal and lifecycle notifications ------------------------------------------------


def subscription_patches(state: graph_fake.GraphState, subscription_id: str) -> int:
    with state.graph_lock:
        return sum(1 for c in state.calls
                   if c.method == "PATCH" and c.url == f"/subscriptions/{subscription_id}")


def test_a_subscription_near_its_expiry_is_renewed_by_the_task(app, state):
    mailbox = add_mailbox(app, state, "R-RENEW")
    [subscription] = fake_subscriptions(state, mailbox)
    expiry_at_fake = subscription.expiration

    summary = run_in_app(app, f"""
        import json
        from datetime import timedelta
        from django.utils import timezone
        from exchange_sync.models import Subscription
        from exchange_sync.tasks import renew_subscriptions_task
        Subscription.objects.filter(resource_id={mailbox.pk}).update(
            expires_at=timezone.now() + timedelta(hours=2))
        print(json.dumps(renew_subscriptions_task()))
    """)

    assert summary == "0 created, 1 renewed, 0 removed, 0 failed."
    assert subscription_patches(state, subscription.id) == 1
    [renewed] = fake_subscriptions(state, mailbox)
    assert renewed.id == subscription.id and renewed.expiration > expiry_at_fake
    row = subscription_row(app, mailbox)
    assert row["renewed_at"] is not None
    assert row["expires_at"] > datetime.now(UTC) + timedelta(minutes=SUBSCRIPTION_MINUTES - 5)


def test_reauthorization_required_renews_the_subscription(app, state):
    mailbox = add_mailbox(app, state, "R-REAUTH")
    [subscription] = fake_subscriptions(state, mailbox)
    expiry_at_fake = subscription.expiration

    assert state.send_lifecycle(subscription.id, "reauthorizationRequired") == 202
    app.wait(lambda: subscription_patches(state, subscription.id) == 1, timeout=30,
             what="the renewal (PATCH) of the subscription")
    app.wait(lambda: subscription_row(app, mailbox)["renewed_at"], timeout=10,
             what="the renewal stored")

    [renewed] = fake_subscriptions(state, mailbox)
    assert renewed.id == subscription.id and renewed.expiration > expiry_at_fake
    assert sync_log(app, mailbox, "subscription")[-1]["message"] == (
        "Lifecycle notification reauthorizationRequired for the mailbox subscription of "
        f"{SOURCE_APP}/{mailbox.number} (Resource {mailbox.number}): renewed.")


def test_subscription_removed_makes_a_new_subscription(app, state):
    mailbox = add_mailbox(app, state, "R-REMOVED")
    [subscription] = fake_subscriptions(state, mailbox)
    full_before = mailbox_state(app, mailbox)["last_full_round_at"]

    assert state.send_lifecycle(subscription.id, "subscriptionRemoved") == 202
    [new] = app.wait(lambda: fake_subscriptions(state, mailbox), timeout=30,
                     what="a new subscription at the fake")

    assert new.id != subscription.id and subscription.id not in state.subscriptions
    assert new.notification_url == app.web_url + NOTIFICATIONS_PATH
    app.wait(lambda: (subscription_row(app, mailbox) or {}).get("subscription_id") == new.id,
             timeout=10, what="the new subscription stored")
    app.wait(lambda: mailbox_state(app, mailbox)["last_full_round_at"] > full_before
             and quiet(app, mailbox), timeout=30, what="the full round after recreating it")


def test_missed_notifications_make_a_full_round(app, state):
    mailbox = add_mailbox(app, state, "R-MISSED")
    [subscription] = fake_subscriptions(state, mailbox)
    full_before = mailbox_state(app, mailbox)["last_full_round_at"]
    state.drop_notifications = True  # what Graph missed: this change
    start = day_at(11, 15)
    event = state.outlook_create(mailbox.email, subject="Missed one", start=graph_time(start),
                                 end=graph_time(start + timedelta(hours=1)))
    state.drop_notifications = False

    assert state.send_lifecycle(subscription.id, "missed") == 202
    app.wait(lambda: (mailbox_state(app, mailbox)["last_full_round_at"] or full_before)
             > full_before and quiet(app, mailbox), timeout=30, what="a full round")

    [made] = appointments_of(app, mailbox)
    assert made["data"]["subject"] == "Missed one"
    assert [link["event_id"] for link in links(app, mailbox)] == [event["id"]]
    assert [f.id for f in fake_subscriptions(state, mailbox)] == [subscription.id]
    assert [e["action"] for e in exchange_events(app, made["guid"])] == ["create"]
