"""A 429 storm from Microsoft Graph (issue 9): the outbound Exchange sync loses nothing, creates
nothing twice and honours every Retry-After.

The app runs for real (the e2e harness: `serve --no-cluster` and one `qcluster`, a fresh
database) against the fake Graph in this process (HTTPS with the suite's test CA; the app gets
HTTP_CA_BUNDLE, ENTRA_AUTHORITY_HOST and GRAPH_BASE_URL). Four synced mailboxes start with two
events each. Then the fake answers the next STORM Graph requests (`$batch` items) 429 with
`Retry-After: RETRY_AFTER_S` while changes are posted in two waves:

1. four creates per mailbox and an update of an existing event: one push of 20 items, each
   answered 429 five times (the client's first try and its four retries), so the client gives
   up and the push puts the appointments back in the queue (PendingSync, a backoff of at least
   the Retry-After);
2. once that has happened: an update of one of the appointments still waiting to be created,
   and a delete of the other existing event; their doorbell push meets the rest of the storm.

Nothing is sped up while the storm lasts. Afterwards the queue is drained the way the app does
it: doorbell tasks push what is due; what is left waits for its `next_attempt_at` (never moved
earlier), and then the test runs the task the "exchange: push pending" schedule runs every
minute (`exchange_sync.tasks.push_pending_task`, through `manage.py shell`), instead of
waiting up to a minute for the schedule's next tick. The inbound schedules (subscriptions, delta
rounds) are removed, so that only the outbound side talks to Graph.

Asserted: every mailbox ends with exactly the events wanted, in their last state; each create
reached the fake's event store once per transactionId (a 429 never reaches it; a second POST
that transactionId de-duplication would absorb never happens); no error in the sync log; the
whole storm was answered, and nobody waited it out inside one task; and no throttled item was
sent again before its Retry-After had passed (same method, URL and transactionId; within
TOLERANCE_S), neither by the client's own retries nor by a later push — also when a newer
change to a throttled appointment arrives meanwhile (PendingSync.not_before keeps Graph's
Retry-After apart from the queue's own due time).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.events import event, new_guid
from tests.e2e.harness import App
from tests.fakes import graph as graph_fake
from tests.fakes.server import FakeServer
from tests.fakes.tls import TestCA

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(150)]

APP = "FLTGRAPH"
MAILBOXES = [(f"R-{n}", f"storm{n}@contoso.test") for n in range(4)]
NEW_PER_MAILBOX = 4
RETRY_AFTER_S = 3.0
CLIENT_TRIES = 5  # GraphClient: the first try and max_retries (4) retries
FIRST_PUSH_ITEMS = len(MAILBOXES) * (NEW_PER_MAILBOX + 1)  # wave 1: one batch of 20
STORM = CLIENT_TRIES * FIRST_PUSH_ITEMS + 3 * 2 * len(MAILBOXES)  # and three rounds of wave 2
TOLERANCE_S = 0.05

CONFIGURE = """
import json
from django_q.models import Schedule
from exchange_sync.models import ExchangeSettings, Resource
exchange = ExchangeSettings.load()
exchange.enabled = True
exchange.tenant_id, exchange.client_id, exchange.client_secret = {credentials!r}
exchange.save()
for number, email in {mailboxes!r}:
    Resource.objects.create(source_app={app!r}, resource_no=number, email=email,
                            sync_enabled=True)
Schedule.objects.filter(name__in=["exchange: renew subscriptions", "exchange: delta rounds"]
                        ).delete()
print(json.dumps(Resource.objects.filter(sync_enabled=True).count()))
"""
SCHEDULED_PUSH = """
import json
from exchange_sync.tasks import push_pending_task
print(json.dumps(push_pending_task()))
"""


class RetryAfterNotHonoured(AssertionError):
    """A throttled item was sent again before its Retry-After had passed."""


@dataclass(frozen=True)
class ItemAnswer:
    """One `$batch` item as the fake answered it."""

    at: float  # time.monotonic() when the fake handled it
    method: str
    url: str
    transaction_id: str  # of a POST (a create); "" otherwise
    status: int
    retry_after: float | None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.method, self.url, self.transaction_id


@dataclass
class StormState(graph_fake.GraphState):
    answers: list[ItemAnswer] = field(default_factory=list)


class RecordingGraphHandler(graph_fake.GraphHandler):
    """The fake Graph, noting when it answered each `$batch` item, how, and with which
    Retry-After."""

    def _batch_item(self, item: dict[str, Any], base: str, claims: dict[str, Any]
                    ) -> dict[str, Any]:
        at = time.monotonic()
        entry = super()._batch_item(item, base, claims)
        sent = item.get("body")
        body: dict[str, Any] = sent if isinstance(sent, dict) else {}
        retry_after = entry["headers"].get("Retry-After")
        state: StormState = self.server.state
        with state.graph_lock:
            state.answers.append(ItemAnswer(
                at, str(item.get("method", "")).upper(), str(item.get("url", "")),
                str(body.get("transactionId") or ""), int(entry["status"]),
                None if retry_after is None else float(retry_after)))
        return entry


@pytest.fixture
def graph(test_ca: TestCA) -> Iterator[FakeServer]:
    state = StormState(ca_file=test_ca.ca_file)
    with FakeServer(RecordingGraphHandler, tls=test_ca.server_context("graph"),
                    state=state) as server:
        for _, email in MAILBOXES:
            state.add_user(email)
        yield server


@pytest.fixture
def app(graph: FakeServer, test_ca: TestCA, tmp_path: Path) -> Iterator[App]:
    """The app with Exchange sync on for MAILBOXES at the fake, web server and one qcluster."""
    app = App(tmp_path)
    app.env.update(HTTP_CA_BUNDLE=test_ca.ca_file, ENTRA_AUTHORITY_HOST=graph.url,
                   GRAPH_BASE_URL=graph.url + "/v1.0", PUBLIC_BASE_URL="")
    try:
        app.setup(connectors=[], source_apps=[APP])
        credentials = (graph_fake.TENANT, graph_fake.CLIENT_ID, graph_fake.CLIENT_SECRET)
        synced = app.shell(CONFIGURE.format(credentials=credentials, mailboxes=MAILBOXES,
                                            app=APP))
        assert synced == len(MAILBOXES)
        app.start_web(wait=False)
        cluster = app.start_cluster(wait=False)
        app.wait_web_ready()
        app.wait_cluster_ready(cluster)
        yield app
    finally:
        app.close()


def change(action: str, guid: str, mailbox: int, *, step: int, subject: str) -> dict[str, Any]:
    number, email = MAILBOXES[mailbox]
    return event(action, guid, APP, step=step, subject=subject,
                 resources=[{"resource_no": number, "email": email}])


def queue(app: App) -> dict[str, Any]:
    """The outbound queue now: rows, their most attempts, rows under a live claim, and in how
    many seconds the last of them is due (read from the app's database directly)."""
    rows = app.query("SELECT * FROM exchange_sync_pendingsync")
    now = datetime.now(UTC)
    due = [max(_when(r["next_attempt_at"]), _when(r.get("not_before") or r["next_attempt_at"]))
           for r in rows]  # not_before: a Retry-After kept apart from the backoff, if stored
    return {"rows": len(rows), "attempts": max([r["attempts"] for r in rows], default=0),
            "claimed": sum(1 for r in rows if r["claimed_until"] is not None
                           and _when(r["claimed_until"]) > now),
            "due_in": max([(at - now).total_seconds() for at in due], default=0.0)}


def _when(value: Any) -> datetime:
    """A datetime column as an aware datetime (SQLite returns text)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def drain(app: App, timeout: float) -> int:
    """Wait until the queue is empty. Rows left once nothing holds them are pushed by the
    schedule's task as soon as all are due (their backoff is waited out, never shortened).
    Returns how many times the schedule's task was run."""
    deadline = time.monotonic() + timeout
    runs = 0
    while True:
        now = queue(app)
        if now["rows"] == 0:
            return runs
        assert time.monotonic() < deadline, f"the queue is not empty after {timeout} s: {now}"
        if now["claimed"] or now["due_in"] > 0:
            time.sleep(min(max(now["due_in"], 0.3), 5.0))
            continue
        app.shell(SCHEDULED_PUSH)
        runs += 1


def early_retries(answers: list[ItemAnswer]) -> list[str]:
    """Items sent again before the Retry-After of their last 429 had passed."""
    last: dict[tuple[str, str, str], ItemAnswer] = {}
    early = []
    for answer in sorted(answers, key=lambda a: a.at):
        before = last.get(answer.key)
        if before is not None and before.retry_after is not None:
            waited = answer.at - before.at
            if waited < before.retry_after - TOLERANCE_S:
                early.append(f"{answer.method} {answer.url} {answer.transaction_id[:8]}: "
                             f"{waited:.2f} s after a 429 with Retry-After {before.retry_after:g}")
        last[answer.key] = answer
    return early


def test_a_429_storm_from_graph_loses_nothing_creates_nothing_twice_and_honours_retry_after(
    app: App, graph: FakeServer
) -> None:
    state: StormState = graph.state
    existing = [[new_guid(), new_guid()] for _ in MAILBOXES]
    fresh = [[new_guid() for _ in range(NEW_PER_MAILBOX)] for _ in MAILBOXES]
    app.accept_events([change("create", guid, box, step=0, subject=f"Existing {n}")
                       for box, guids in enumerate(existing) for n, guid in enumerate(guids)])
    app.wait(lambda: queue(app)["rows"] == 0, timeout=30, what="the existing events pushed")
    assert all(len(state.events(email)) == 2 for _, email in MAILBOXES)
    state.reset_counters()
    state.throttle(STORM, retry_after_s=RETRY_AFTER_S)
    storm_started = time.monotonic()

    # Wave 1: 16 creates and 4 updates, one push of 20 items; the client gives up on it.
    app.accept_events(
        [change("create", guid, box, step=0, subject=f"New {n}")
         for box, guids in enumerate(fresh) for n, guid in enumerate(guids)]
        + [change("update", guids[0], box, step=1, subject="Existing 0, moved on")
           for box, guids in enumerate(existing)])
    app.wait(lambda: queue(app)["attempts"] >= 1, timeout=40,
             what="the first push to give up and queue its appointments again")
    # Wave 2, while the storm goes on: an update of a create still waiting, a delete.
    app.accept_events(
        [change("update", guids[0], box, step=1, subject="New 0, changed")
         for box, guids in enumerate(fresh)]
        + [change("delete", guids[1], box, step=1, subject="Existing 1")
           for box, guids in enumerate(existing)])
    scheduled_runs = drain(app, timeout=75)

    # Nothing lost: each mailbox holds exactly the events wanted, in their last state.
    for _, email in MAILBOXES:
        subjects = sorted(e["subject"] for e in state.events(email))
        assert subjects == sorted(["Existing 0, moved on", "New 0, changed", "New 1", "New 2",
                                   "New 3"]), (email, subjects)
    # Nothing created twice, and never thanks to transactionId: one POST per create (the
    # existing events' included) reached the fake's event store (a 429 does not).
    answers = list(state.answers)
    stored = Counter(a.transaction_id for a in answers if a.method == "POST" and a.status != 429)
    assert len(stored) == len(MAILBOXES) * (NEW_PER_MAILBOX + 2)
    assert set(stored.values()) == {1}, stored
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {200, 201, 204, 429}, statuses
    # The storm outlasted the client's own retries (the first push's items got 429 on every
    # try) and went on into the next pushes.
    throttled = [a for a in answers if a.status == 429]
    assert len(throttled) > CLIENT_TRIES * FIRST_PUSH_ITEMS
    assert max(Counter(a.key for a in throttled).values()) >= CLIENT_TRIES
    assert all(a.batch_item for a in state.calls)  # every Graph call was a recorded item
    # No permanent error, and Retry-After honoured.
    errors = app.query("SELECT message FROM exchange_sync_synclogentry WHERE kind = %s",
                       ["error"])
    assert errors == []
    early = early_retries(answers)
    if early:
        raise RetryAfterNotHonoured(f"{len(early)} item(s) sent again too early: {early[:4]}")
    elapsed = time.monotonic() - storm_started
    print(f"storm of {STORM} 429s over {elapsed:.1f} s; {len(answers)} items answered; "
          f"schedule task run {scheduled_runs} time(s)")
