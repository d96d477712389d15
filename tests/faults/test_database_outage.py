"""PostgreSQL "restarts" while back offices post events.

Design: the app's processes (gunicorn, qcluster, its manage.py commands) reach PostgreSQL
through a loopback TCP proxy (tests/fakes/tcp_proxy.py); the outage is the proxy resetting
every open connection and refusing new ones for OUTAGE_S seconds, exactly what a restart does
to the app. The real server is not restarted: that would also kill the test's own connection
and every other test run on the machine, at a moment the test does not control.

While clients post single events (each event_id its own), the API must answer 202 or, during
the outage, 503 with the JSON error shape and Retry-After (never a traceback, never HTML).
The clients re-post what got 503 until it is accepted. Afterwards every event is stored exactly
once, and delivered exactly once: the qcluster starts after the outage (so the test is about
intake; a delivery cut mid-flight would legitimately be sent twice, see test_worker_kill.py),
and one sweep queues what the broker never got.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.e2e.backends import PostgresDatabase, postgresql_reachable, postgresql_server_url
from tests.e2e.events import event, new_guid
from tests.e2e.harness import EVENTS_PATH, App, deployed
from tests.fakes.server import FakeServer
from tests.fakes.tcp_proxy import TcpProxy
from tests.support import require, web_client

from .conftest import hook, webhook_ids

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

APP = "FLTPG"
EVENTS = 160
CLIENTS = 4
OUTAGE_S = 3.0


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    server = postgresql_server_url()
    require(postgresql_reachable(server), "PostgreSQL on 127.0.0.1:5432 (or DATABASE_URL)")
    parts = urlsplit(server)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        yield proxy


@pytest.fixture
def app(proxy: TcpProxy, receiver: FakeServer, tmp_path) -> Iterator[App]:
    database = PostgresDatabase(postgresql_server_url())

    def through_proxy(app: App) -> None:
        parts = urlsplit(database.url)
        netloc = parts.netloc.rpartition("@")[0] + "@" if "@" in parts.netloc else ""
        app.env["DATABASE_URL"] = urlunsplit(
            parts._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}"))

    with deployed(tmp_path, connectors=[hook(receiver, APP)], source_apps=[APP], clusters=0,
                  database=database, configure=through_proxy) as app:
        yield app


class Clients:
    """CLIENTS threads posting EVENTS single events, re-posting each one that got 503."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.events = [event("create", new_guid(), APP) for _ in range(EVENTS)]
        self.position = iter(range(EVENTS))
        self.lock = threading.Lock()
        self.accepted: Counter[str] = Counter()  # event_id -> 202 answers
        self.unavailable: list[httpx.Response] = []
        self.unexpected: list[str] = []
        self.threads = [threading.Thread(target=self._run) for _ in range(CLIENTS)]

    def _run(self) -> None:
        with web_client() as client:
            while True:
                with self.lock:
                    index = next(self.position, None)
                if index is None:
                    return
                self._post_until_accepted(client, self.events[index])
                time.sleep(0.02)

    def _post_until_accepted(self, client: httpx.Client, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answer = client.post(self.app.web_url + EVENTS_PATH, json=body,
                                 headers={"Authorization": f"Bearer {self.app.api_key}"})
            with self.lock:
                if answer.status_code == 202:
                    [result] = answer.json()["results"]
                    self.accepted[result["event_id"]] += 1
                    return
                if answer.status_code == 503:
                    self.unavailable.append(answer)
                else:
                    self.unexpected.append(f"{answer.status_code}: {answer.text[:300]}")
                    return
            time.sleep(0.1)
        with self.lock:
            self.unexpected.append(f"{body['event_id']}: not accepted within 60 s")

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=120)


def test_a_database_restart_during_intake_answers_503_and_loses_or_repeats_nothing(
    app, proxy, receiver
):
    clients = Clients(app)
    clients.start()
    app.wait(lambda: sum(clients.accepted.values()) >= 30, timeout=60,
             what="30 events accepted before the outage")
    cut = proxy.cut()
    time.sleep(OUTAGE_S)
    proxy.restore()
    clients.join()

    assert cut >= 1  # the web server's connections were open, and were reset
    assert proxy.refused >= 1  # reconnecting was refused during the outage
    assert clients.unexpected == []  # only 202 and 503 were ever answered
    assert clients.unavailable, "no request met the outage"
    for answer in clients.unavailable:
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["retry-after"] == "5"
        assert answer.json() == {"error": {
            "status": 503, "code": "unavailable",
            "message": "The service is temporarily unavailable (database unreachable); "
                       "retry later."}}
    event_ids = [e["event_id"] for e in clients.events]
    assert sorted(clients.accepted) == sorted(event_ids)
    assert set(clients.accepted.values()) == {1}  # each answered 202 once, then not re-posted

    stored = app.query("SELECT event_id, count(*) AS n FROM connectors_appointmentevent"
                       " GROUP BY event_id")
    assert {row["event_id"]: row["n"] for row in stored} == dict.fromkeys(event_ids, 1)

    app.start_cluster()
    app.run_sweeper()  # what the every-minute schedule does; the broker missed some messages
    rows = app.wait_settled(APP, EVENTS, timeout=90)
    assert {r["status"] for r in rows} == {"succeeded"}
    delivered = webhook_ids(receiver)
    assert sorted(delivered) == sorted(r["message_id"] for r in rows)  # each exactly once
