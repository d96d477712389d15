"""The Redis broker becomes unreachable: events posted meanwhile are still accepted, and are
delivered by the outbox sweep once it is back (the broker is only a doorbell).

Design: the app's processes reach Redis through a loopback TCP proxy (tests/fakes/tcp_proxy.py)
that the test cuts (every connection reset, new ones refused) instead of stopping the machine's
Redis, which other runs share. While it is cut: the API answers 202 (the rate-limit cache fails
open, queueing a dispatch only logs a warning), and nothing is delivered. After it is restored,
the queue messages of those dispatches are gone for good; the `sweep_dispatches` schedule run
by the cluster's scheduler queues them again. The test moves that schedule's next run to now,
as a minute passing would, and waits for the scheduler (it looks every ~30 s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.e2e.backends import redis_reachable, redis_server_url
from tests.e2e.events import event, new_guid
from tests.e2e.harness import App, deployed
from tests.fakes.server import FakeServer
from tests.fakes.tcp_proxy import TcpProxy
from tests.support import require

from .conftest import hook, webhook_ids

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

APP = "FLTREDIS"
BEFORE, DURING = 20, 30
SWEEP_TASK = "connectors.tasks.sweep_dispatches"


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    server = redis_server_url()
    require(redis_reachable(server), "Redis on 127.0.0.1:6379 (or REDIS_URL)")
    parts = urlsplit(server)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        yield proxy


@pytest.fixture
def app(proxy: TcpProxy, receiver: FakeServer, tmp_path) -> Iterator[App]:
    parts = urlsplit(redis_server_url())
    through_proxy = urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))
    with deployed(tmp_path, connectors=[hook(receiver, APP)], source_apps=[APP],
                  redis=through_proxy) as app:
        yield app


def test_events_posted_while_the_broker_is_down_are_delivered_once_by_the_sweep(
    app, proxy, receiver
):
    first = [event("create", new_guid(), APP) for _ in range(BEFORE)]
    assert [r["status"] for r in app.accept_events(first)] == ["accepted"] * BEFORE
    app.wait_settled(APP, BEFORE, timeout=60)

    assert proxy.cut() >= 1  # the web server and the cluster were connected
    assert app.get("/healthz").status_code == 503  # the health check sees it
    during = [event("create", new_guid(), APP) for _ in range(DURING)]
    for item in during:  # one by one, as a back office does
        [result] = app.accept_events([item])
        assert result["status"] == "accepted" and result["dispatches"] == 1
    time.sleep(2)
    assert len(webhook_ids(receiver)) == BEFORE  # nothing can ring the doorbell now
    assert app.statuses(APP) == {"succeeded": BEFORE, "pending": DURING}
    assert "Could not queue" in app.services[0].text()  # the web server said so

    proxy.restore()
    app.wait(lambda: app.get("/healthz").status_code == 200, timeout=10, what="/healthz 200")
    app.shell(
        "import json\nfrom django.utils import timezone\nfrom django_q.models import Schedule\n"
        f"n = Schedule.objects.filter(func={SWEEP_TASK!r}).update(next_run=timezone.now())\n"
        "print(json.dumps(n))\n"
    )
    rows = app.wait_settled(APP, BEFORE + DURING, timeout=75)

    assert {r["status"] for r in rows} == {"succeeded"}
    delivered = webhook_ids(receiver)
    assert sorted(delivered) == sorted(r["message_id"] for r in rows)  # each exactly once
    # The scheduled sweep did it, not a message. Its result row is written by the cluster's
    # monitor, which may come after the deliveries the sweep queued when the cores are busy.
    app.wait(lambda: app.query("SELECT count(*) AS n FROM django_q_task WHERE func = %s"
                               " AND success = %s", [SWEEP_TASK, True])[0]["n"],
             timeout=15, what="the scheduled sweep's result")
