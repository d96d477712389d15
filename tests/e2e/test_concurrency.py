"""Two qcluster processes on one database: each dispatch is sent once, none is lost, and the
order per appointment holds.

On PostgreSQL claims use `select_for_update(skip_locked=True)`; on SQLite IMMEDIATE transactions
serialise them. The tests run on whichever DATABASE_URL selects (both CI passes).

One connector's dispatches are sent by backlog tasks: the task a post queued, and a helper when
the backlog is long. Which cluster takes which task is the broker's choice, so what the first
test checks is that two of them sent at the same time (their run times overlap), not which
cluster ran them.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations

import pytest

from tests.fakes import webhook_receiver
from tests.fakes.server import FakeServer

from .events import event, new_guid
from .harness import App, deployed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
APP = "E2ETWO"
BACKLOG_TASK = "connectors.tasks.deliver_backlog"


@pytest.fixture
def receiver() -> Iterator[FakeServer]:
    with webhook_receiver.make(secrets=[SECRET]) as server:
        server.fail(delay_s=0.01)  # a little latency, so both clusters have work in flight
        yield server


@pytest.fixture
def app(receiver: FakeServer, tmp_path) -> Iterator[App]:
    hook = {"name": "E2E shared hook", "type": "webhook", "api_type": "rest",
            "auth_type": "none", "uri": receiver.url + "/hooks/dime", "source_app": APP,
            "signing_secret": SECRET, "timeout_s": 5}
    with deployed(tmp_path, connectors=[hook], source_apps=[APP], clusters=2) as app:
        yield app


def delivered(receiver: FakeServer) -> list[tuple[str, str, str, str]]:
    """(webhook-id, appointment guid, type, subject) of every accepted delivery, in order."""
    return [(d.header("webhook-id"), d.json()["data"]["guid"], d.json()["type"],
             d.json()["data"]["subject"]) for d in receiver.state.deliveries]


def test_two_clusters_send_each_of_300_dispatches_exactly_once_in_order(app, receiver):
    guids = [new_guid() for _ in range(100)]
    for step, action in enumerate(("create", "update", "delete")):
        results = app.accept_events([event(action, g, APP, step=step) for g in guids])
        assert [r["status"] for r in results] == ["accepted"] * len(guids)

    rows = app.wait_settled(APP, 300, timeout=120)
    assert {r["status"] for r in rows} == {"succeeded"}
    ids = [message_id for message_id, *_ in delivered(receiver)]
    assert len(ids) == len(set(ids)) == 300  # none twice
    assert set(ids) == {r["message_id"] for r in rows}  # none lost
    for guid in guids:
        assert [kind for _, g, kind, _ in delivered(receiver) if g == guid] == [
            "appointment.created", "appointment.updated", "appointment.deleted"]
    app.wait(lambda: two_at_once(app), timeout=15,
             what="two backlog tasks that ran at the same time")


def two_at_once(app: App) -> bool:
    """Two finished backlog tasks overlapped in time (result rows are written by the cluster's
    monitor, after the task: the last ones may still be missing)."""
    runs = app.query("SELECT started, stopped FROM django_q_task WHERE func = %s",
                     [BACKLOG_TASK])
    return any(a["started"] < b["stopped"] and b["started"] < a["stopped"]
               for a, b in combinations(runs, 2))


def test_two_clusters_coalesce_queued_updates_and_never_send_an_older_state_last(
    app, receiver
):
    guids = [new_guid() for _ in range(60)]
    app.accept_events([event("create", g, APP) for g in guids])
    for version in (1, 2, 3, 4):  # these arrive while the chains are moving
        app.accept_events([event("update", g, APP, step=version, subject=f"v{version}")
                           for g in guids])

    rows = app.wait_settled(APP, 5 * len(guids), timeout=120)
    assert {r["status"] for r in rows} == {"succeeded", "cancelled"}  # some were coalesced
    for row in rows:
        if row["status"] == "cancelled":
            assert app.attempt_outcomes(row["id"]) == ["coalesced"]
    out_of_order = {}
    for guid in guids:
        versions = [int(subject[1:]) for _, g, kind, subject in delivered(receiver)
                    if g == guid and kind == "appointment.updated"]
        if versions != sorted(set(versions)) or versions[-1:] != [4]:
            out_of_order[guid] = versions
    assert not out_of_order  # each appointment's updates rose, and the newest came last
    ids = [message_id for message_id, *_ in delivered(receiver)]
    assert sorted(ids) == sorted(r["message_id"] for r in rows if r["status"] == "succeeded")
