"""A worker killed with SIGKILL in the middle of a batch, and a new one started: every
dispatch is delivered, and exactly those that were in flight at the kill and had reached the
receiver are delivered twice.

In flight: what a backlog task had claimed (a page, up to BACKLOG_PAGE dispatches per worker),
including what it had sent and not yet recorded (successes are written together, at least
every RECORD_EVERY_S) and the one in the receiver's hands. It stays `sending` under its lease
(3 x the connector's timeout + 30 s; 33 s with timeout_s=1). The test waits for the lease to
run out and then runs the sweeper once itself, as the every-minute schedule would: django-q2's
scheduler looks only every ~30 s, so waiting for it would add up to a minute. The test checks
that the migrations created that schedule and that the new cluster ran it. (This replaces
tests/e2e/test_worker_loss.py, with exact counts; it is marked e2e too.)
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from connectors.delivery import lease_seconds
from connectors.delivery.sending import BACKLOG_PAGE
from connectors.models import Connector
from tests.e2e.events import event, new_guid
from tests.e2e.harness import App, deployed
from tests.fakes.server import FakeServer

from .conftest import hook, webhook_ids

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(240)]

APP = "FLTKILL"
WORKERS = 2
TIMEOUT_S = 1
SWEEP_TASK = "connectors.tasks.sweep_dispatches"
APPOINTMENTS = 100  # a create and an update each: 200 events, 200 dispatches


@pytest.fixture
def app(receiver: FakeServer, tmp_path) -> Iterator[App]:
    receiver.fail(delay_s=0.05)  # every delivery takes 50 ms to answer
    with deployed(tmp_path, connectors=[hook(receiver, APP, timeout_s=TIMEOUT_S)],
                  source_apps=[APP], workers=WORKERS) as app:
        yield app


def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_exactly_what_was_in_flight(
    app, receiver
):
    [schedule] = app.query("SELECT schedule_type, minutes, repeats FROM django_q_schedule"
                           " WHERE func = %s", [SWEEP_TASK])
    assert schedule == {"schedule_type": "I", "minutes": 1, "repeats": -1}  # every minute
    guids = [new_guid() for _ in range(APPOINTMENTS)]
    events = [event("create", g, APP) for g in guids]
    events += [event("update", g, APP, step=1) for g in guids]
    assert sum(r["dispatches"] for r in app.accept_events(events)) == 2 * APPOINTMENTS

    # Kill while a delivery is inside the receiver (received, not answered yet): the receiver
    # takes it, the worker never records it, so it must be sent again after the lease; so
    # must those it sent before and had not written yet.
    app.wait(lambda: len(receiver.state.deliveries) >= 40
             and len(receiver.requests) > len(receiver.state.deliveries),
             timeout=60, interval=0.005, what="40 deliveries and one in the receiver's hands")
    app.cluster(1).kill()
    killed_at = time.monotonic()
    in_flight = {r["message_id"]: r for r in app.dispatches(APP) if r["status"] == "sending"}
    assert 1 <= len(in_flight) <= WORKERS * BACKLOG_PAGE
    time.sleep(0.5)  # the receiver finishes what it holds (its 50 ms delay)
    received_before = set(webhook_ids(receiver))
    assert len(received_before) < 2 * APPOINTMENTS  # killed in the middle
    sent_but_unrecorded = set(in_flight) & received_before
    assert sent_but_unrecorded  # at least the one in the receiver's hands at the kill

    app.start_cluster()
    time.sleep(max(0.0, killed_at + lease_seconds(Connector(timeout_s=TIMEOUT_S)) + 1
                   - time.monotonic()))
    app.run_sweeper()
    rows = app.wait_settled(APP, 2 * APPOINTMENTS, timeout=60)

    assert {r["status"] for r in rows} == {"succeeded"}
    delivered = webhook_ids(receiver)
    assert set(delivered) == {r["message_id"] for r in rows}  # nothing lost
    # Exact: one delivery per dispatch, plus one more for each that was sent, not recorded.
    assert len(delivered) == 2 * APPOINTMENTS + len(sent_but_unrecorded)
    twice = {msg for msg, n in Counter(delivered).items() if n > 1}
    assert twice == sent_but_unrecorded
    assert max(Counter(delivered).values()) == 2
    # The bound, from the attempt log: a dispatch is sent again only after an attempt logged
    # "lost" (its worker died); every dispatch has exactly one successful attempt.
    for message_id, row in in_flight.items():
        outcomes = app.attempt_outcomes(row["id"])
        assert outcomes.count("lost") == 1 and outcomes[-1] == "succeeded", message_id
    lost = app.query("SELECT count(*) AS n FROM connectors_attempt WHERE outcome = %s", ["lost"])
    assert lost[0]["n"] == len(in_flight)
    succeeded = app.query("SELECT count(*) AS n FROM connectors_attempt WHERE outcome = %s",
                          ["succeeded"])
    assert succeeded[0]["n"] == 2 * APPOINTMENTS
    # The new cluster's scheduler ran the sweeper schedule too (it looks every ~30 s).
    app.wait(lambda: app.query("SELECT count(*) AS n FROM django_q_task WHERE func = %s"
                               " AND success = %s", [SWEEP_TASK, True])[0]["n"],
             timeout=45, what="a scheduled sweep run by the new cluster")
    # Per appointment, the create still arrived before the update (first arrivals).
    bodies = [(d.json()["data"]["guid"], d.json()["type"]) for d in receiver.state.deliveries]
    for guid in guids:
        kinds = list(dict.fromkeys(kind for g, kind in bodies if g == guid))
        assert kinds == ["appointment.created", "appointment.updated"], guid
