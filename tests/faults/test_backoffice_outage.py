"""A back office down for six hours, simulated: every delivery is retried on the default
schedule, nothing is given up or sent out of order, and after it recovers each dispatch
arrives exactly once, per appointment in order.

Six hours are not slept: whenever every open chain head waits for its next attempt, the test
lets that wait "pass" by making those dispatches due now (what the clock would do) and runs
the sweeper (what the every-minute schedule would do), adding the wait it skipped to the
simulated time. The schedule is immediately, 5 s, 5 min, 30 min, 2 h, 5 h, … (±20 %): the
first two attempts happen for real (retries due within 15 s are waited for by the task), then
three skipped waits bring the simulated outage to ~2 h 35 min with five failed attempts per
create; the next attempt is due ~5 h later, after the six hours, when the back office answers
again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.retry import DEFAULT_RETRY_SCHEDULE
from tests.e2e.events import event, new_guid
from tests.e2e.harness import App, deployed
from tests.fakes.server import FakeServer

from .conftest import hook, webhook_ids

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

APP = "FLTDOWN"
APPOINTMENTS = 10
OUTAGE_S = 6 * 3600
JITTER = 0.2

# Each wait is measured from the end of the dispatch's last attempt (when the schedule set it),
# not from now: with two workers, ten dispatches' attempts end up to ~20 s apart.
WAITS = """
import json
from datetime import timedelta
from django.utils import timezone
from connectors.models import Attempt, Dispatch
from connectors.tasks import sweep_dispatches
now = timezone.now()
heads = Dispatch.objects.filter(status="retrying")
def since_last_attempt(dispatch):
    last = Attempt.objects.filter(dispatch=dispatch).order_by("-number").first()
    ended = last.started_at + timedelta(milliseconds=last.duration_ms)
    return (dispatch.next_attempt_at - ended).total_seconds()
waits = [since_last_attempt(d) for d in heads]
"""
# The waits of the retrying dispatches are skipped: due now, and the sweeper queues them.
SKIP_AND_SWEEP = WAITS + """
heads.update(next_attempt_at=now)
print(json.dumps({"waits": waits, "queued": sweep_dispatches()}))
"""
READ_WAITS = WAITS + """
print(json.dumps({"waits": waits}))
"""


@pytest.fixture
def app(receiver: FakeServer, tmp_path) -> Iterator[App]:
    receiver.fail(status=503)  # the back office is down from the start
    with deployed(tmp_path, connectors=[hook(receiver, APP)], source_apps=[APP]) as app:
        yield app


def heads_waiting(app: App, attempts: int) -> list[dict[str, object]] | None:
    """The creates, once all are `retrying` after `attempts` attempts (no attempt under way)."""
    rows = [r for r in app.dispatches(APP) if r["action"] == "create"]
    done = all(r["status"] == "retrying" and r["attempts"] == attempts for r in rows)
    return rows if done else None


def test_a_back_office_down_for_six_hours_gets_everything_once_in_order_when_it_recovers(
    app, receiver
):
    guids = [new_guid() for _ in range(APPOINTMENTS)]
    app.accept_events([event("create", g, APP) for g in guids])
    app.accept_events([event("update", g, APP, step=1, subject="v1") for g in guids])

    # Attempts 1 and 2 for real (0 s, then 5 s ±20 % waited for by the task).
    app.wait(lambda: heads_waiting(app, 2), timeout=30, what="two attempts of every create")
    simulated = DEFAULT_RETRY_SCHEDULE[1] * (1 + JITTER)  # at most
    for attempt in (3, 4, 5):  # 5 min, 30 min, 2 h pass
        skipped = app.shell(SKIP_AND_SWEEP)
        expected = DEFAULT_RETRY_SCHEDULE[attempt - 1]  # the step after attempt - 1
        assert len(skipped["waits"]) == APPOINTMENTS
        for wait in skipped["waits"]:  # each wait is the schedule's step, with its jitter
            assert expected * (1 - JITTER) - 15 <= wait <= expected * (1 + JITTER), wait
        simulated += max(skipped["waits"])
        app.wait(lambda a=attempt: heads_waiting(app, a), timeout=30,
                 what=f"attempt {attempt} of every create")
    statuses = app.statuses(APP)
    assert statuses == {"retrying": APPOINTMENTS, "pending": APPOINTMENTS}  # updates wait
    rows = heads_waiting(app, 5)
    assert rows is not None
    next_waits = app.shell(READ_WAITS)["waits"]
    assert simulated < OUTAGE_S < simulated + min(next_waits)  # the 6th is after 6 hours
    # Exactly five failed requests per create reached the back office; no update was tried.
    assert len(receiver.requests) == 5 * APPOINTMENTS
    assert {r.json()["type"] for r in receiver.requests} == {"appointment.created"}
    assert receiver.state.deliveries == []

    receiver.reset()  # six hours later, the back office answers again
    app.shell(SKIP_AND_SWEEP)
    rows = app.wait_settled(APP, 2 * APPOINTMENTS, timeout=60)

    assert {r["status"] for r in rows} == {"succeeded"}
    assert not app.query("SELECT id FROM connectors_connector WHERE quarantined_at IS NOT NULL")
    delivered = webhook_ids(receiver)
    assert sorted(delivered) == sorted(r["message_id"] for r in rows)  # each exactly once
    for guid in guids:
        kinds = [d.json()["type"] for d in receiver.state.deliveries
                 if d.json()["data"]["guid"] == guid]
        assert kinds == ["appointment.created", "appointment.updated"], guid
    for row in rows:
        outcomes = app.attempt_outcomes(row["id"])
        expected = ["retry"] * 5 + ["succeeded"] if row["action"] == "create" else ["succeeded"]
        assert outcomes == expected, row
