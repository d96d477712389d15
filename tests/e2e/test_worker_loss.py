"""A worker killed with SIGKILL in the middle of a batch, and a new one started: every
dispatch is delivered, and only what was in flight at the kill is delivered twice.

What was in flight stays `sending` under its lease (3 × the connector's timeout + 30 s; 33 s
with timeout_s=1). The test waits for the lease to run out and then runs the sweeper once
itself, as the every-minute schedule would: django-q2's scheduler looks only every ~30 s, so
waiting for it would add up to a minute. The test checks that the migrations created that
schedule and that the new cluster ran it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from connectors.delivery import lease_seconds
from connectors.models import Connector
from tests.fakes import webhook_receiver
from tests.fakes.server import FakeServer

from .events import event, new_guid
from .harness import App, deployed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
APP = "E2EKILL"
WORKERS = 2
TIMEOUT_S = 1
SWEEP_TASK = "connectors.tasks.sweep_dispatches"
APPOINTMENTS = 100  # a create and an update each: 200 events, 200 dispatches


@pytest.fixture
def receiver() -> Iterator[FakeServer]:
    with webhook_receiver.make(secrets=[SECRET]) as server:
        server.fail(delay_s=0.05)  # every delivery takes 50 ms to answer
        yield server


@pytest.fixture
def app(receiver: FakeServer, tmp_path) -> Iterator[App]:
    hook = {"name": "E2E slow hook", "type": "webhook", "api_type": "rest", "auth_type": "none",
            "uri": receiver.url + "/hooks/dime", "source_app": APP, "signing_secret": SECRET,
            "timeout_s": TIMEOUT_S}
    with deployed(tmp_path, connectors=[hook], source_apps=[APP], workers=WORKERS) as app:
        yield app


def first_seen(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_only_what_was_in_flight(
    app, receiver
):
    [schedule] = app.query("SELECT schedule_type, minutes, repeats FROM django_q_schedule"
                           " WHERE func = %s", [SWEEP_TASK])
    assert schedule == {"schedule_type": "I", "minutes": 1, "repeats": -1}  # every minute
    guids = [new_guid() for _ in range(APPOINTMENTS)]
    events = [event("create", g, APP) for g in guids]
    events += [event("update", g, APP, step=1) for g in guids]
    assert sum(r["dispatches"] for r in app.accept_events(events)) == 2 * APPOINTMENTS
    cluster = app.cluster(1)

    # Kill while a delivery is inside the receiver (received, not answered yet): the receiver
    # takes it, the worker never records it, so it must be sent again after the lease.
    app.wait(lambda: len(receiver.state.deliveries) >= 40
             and len(receiver.requests) > len(receiver.state.deliveries),
             timeout=60, interval=0.005, what="40 deliveries and one in the receiver's hands")
    cluster.kill()
    killed_at = time.monotonic()
    in_flight = {r["message_id"]: r for r in app.dispatches(APP) if r["status"] == "sending"}
    assert 1 <= len(in_flight) <= WORKERS
    assert len(receiver.state.deliveries) < 2 * APPOINTMENTS  # killed in the middle

    app.start_cluster()
    lease = lease_seconds(Connector(timeout_s=TIMEOUT_S))
    time.sleep(max(0.0, killed_at + lease + 1 - time.monotonic()))
    app.run_sweeper()
    rows = app.wait_settled(APP, 2 * APPOINTMENTS, timeout=60)

    assert {r["status"] for r in rows} == {"succeeded"}
    delivered = [d.header("webhook-id") for d in receiver.state.deliveries]
    assert set(delivered) == {r["message_id"] for r in rows}  # nothing lost
    repeated = [msg for msg in set(delivered) if delivered.count(msg) > 1]
    assert 1 <= len(delivered) - len(set(delivered)) <= len(in_flight)
    assert set(repeated) <= set(in_flight)  # only what was in flight came twice
    for message_id, row in in_flight.items():
        assert "lost" in app.attempt_outcomes(row["id"]), message_id
    # The new cluster's scheduler ran the sweeper schedule too (it looks every ~30 s).
    app.wait(lambda: app.query("SELECT count(*) AS n FROM django_q_task WHERE func = %s"
                               " AND success = %s", [SWEEP_TASK, True])[0]["n"],
             timeout=45, what="a scheduled sweep run by the new cluster")
    # Per appointment, the create still arrived before the update (first arrivals).
    bodies = [(d.json()["data"]["guid"], d.json()["type"], d.header("webhook-id"))
              for d in receiver.state.deliveries]
    for guid in guids:
        kinds = first_seen([kind for g, kind, _ in bodies if g == guid])
        assert kinds == ["appointment.created", "appointment.updated"], guid
