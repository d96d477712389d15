"""Scale-out: two web workers (gunicorn --workers 2) and two qcluster processes on PostgreSQL
and the Redis broker. A few hundred events from concurrent clients, through both web workers,
become exactly one delivery per dispatch: none sent twice, none lost (counted at the receiver
by webhook-id), and each appointment's changes in order.

It needs PostgreSQL and Redis: those of DATABASE_URL / REDIS_URL, or else the machine's own on
127.0.0.1 (tests/e2e/backends.py); skipped locally without them, failed in CI (require()).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.backends import (
    PostgresDatabase,
    postgresql_reachable,
    postgresql_server_url,
    redis_reachable,
    redis_server_url,
)
from tests.fakes import webhook_receiver
from tests.fakes.server import FakeServer
from tests.support import require

from .events import event, new_guid
from .harness import EVENTS_PATH, App, deployed

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(240)]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
APP = "E2ESCALE"
CLIENTS = 6
APPOINTMENTS = 150  # a create and an update each: 300 events, 300 dispatches
PROCESSED = "Processed 'connectors.tasks.deliver_backlog'"


@pytest.fixture
def receiver() -> Iterator[FakeServer]:
    with webhook_receiver.make(secrets=[SECRET]) as server:
        server.fail(delay_s=0.01)  # a little latency, so both clusters have work in flight
        yield server


@pytest.fixture
def app(receiver: FakeServer, tmp_path) -> Iterator[App]:
    require(postgresql_reachable(postgresql_server_url()), "PostgreSQL")
    require(redis_reachable(redis_server_url()), "Redis")
    hook = {"name": "Scale-out hook", "type": "webhook", "api_type": "rest",
            "auth_type": "none", "uri": receiver.url + "/hooks/dime", "source_app": APP,
            "signing_secret": SECRET, "timeout_s": 5}
    with deployed(tmp_path, connectors=[hook], source_apps=[APP], clusters=2, web_workers=2,
                  database=PostgresDatabase(postgresql_server_url()),
                  redis=redis_server_url(), env={"API_RATE": ""}) as app:
        yield app


def post_from_clients(app: App, guids: list[str]) -> list[str]:
    """Each client thread posts its appointments' create, then update, one event per request
    on a new connection (so gunicorn spreads them over its workers); returns the problems."""
    problems: list[str] = []
    lock = threading.Lock()

    def client(mine: list[str]) -> None:
        for guid in mine:
            for step, action in enumerate(("create", "update")):
                answer = httpx.post(app.web_url + EVENTS_PATH, timeout=30, trust_env=False,
                                    json=event(action, guid, APP, step=step),
                                    headers={"Authorization": f"Bearer {app.api_key}"})
                if answer.status_code != 202 or answer.json()["accepted"] != 1:
                    with lock:
                        problems.append(f"{answer.status_code}: {answer.text[:200]}")

    threads = [threading.Thread(target=client, args=(guids[n::CLIENTS],))
               for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    return problems


def test_two_web_workers_and_two_clusters_deliver_each_dispatch_exactly_once(app, receiver):
    web_log = app.services[0]
    assert web_log.text().count("Booting worker with pid") == 2  # two gunicorn workers
    guids = [new_guid() for _ in range(APPOINTMENTS)]
    assert post_from_clients(app, guids) == []

    rows = app.wait_settled(APP, 2 * APPOINTMENTS, timeout=150)
    assert {r["status"] for r in rows} == {"succeeded"}
    delivered = [d.header("webhook-id") for d in receiver.state.deliveries]
    assert len(delivered) == 2 * APPOINTMENTS  # exactly one delivery per dispatch
    assert Counter(delivered).most_common(1)[0][1] == 1  # none sent twice
    assert set(delivered) == {r["message_id"] for r in rows}  # none lost
    for guid in guids:
        kinds = [d.json()["type"] for d in receiver.state.deliveries
                 if d.json()["data"]["guid"] == guid]
        assert kinds == ["appointment.created", "appointment.updated"], guid
    # Both clusters took a share (a worker logs a task once it has ended).
    app.wait(lambda: all(PROCESSED in app.cluster(n).text() for n in (1, 2)), timeout=15,
             what="a backlog task processed by each cluster")
