"""Benchmark: pushing appointment changes to Outlook through the fake Microsoft Graph.

    python -m tests.benchmarks.exchange                      # SQLite files, the ORM broker
    python -m tests.benchmarks.exchange --database-url postgres://root@127.0.0.1:5432/postgres \\
        --redis-url redis://127.0.0.1:6379/14

The workload (issue 9): --changes appointment changes (1,000) over --mailboxes synced resources
(100), each with its mailbox at the fake Graph (tests/fakes/graph, over HTTPS with a test CA,
--latency-ms 20 per HTTP request). Per mailbox ten appointments: four are created, and six
that already have their Outlook event (created and pushed before the clock starts, not
counted) get one change each: three updates (subject and body), two moves (start and end) and
one delete. Every change is to a different appointment, so nothing coalesces in the queue and
each change needs exactly one Graph operation: the figures are what `$batch` buys, not what
coalescing hides.

Measured, each series against its own fresh appointments on the same mailboxes:

0. baseline, in process: the changes accepted through `connectors.intake.events_accept` (the
   API's serializer first), then pushed by the production push (`push_pending`) with a Graph
   client whose `batch()` sends each item as its own request (`GraphClient.request`, same
   method, URL, body and headers): one Graph request per change.
a. in process: the same, pushed by `push_all()` as the doorbell task does (`$batch`, 20 items).
b. end to end: the app served for real (the e2e harness: `serve --no-cluster` with two web
   workers and one `qcluster` with two workers, on a fresh SQLite file, or PostgreSQL with
   --database-url, Redis broker with --redis-url); the changes POSTed one per request to
   /api/v1/appointments/events/ by --clients concurrent clients, the doorbell tasks (1 s
   debounce) doing the pushes; timed from the first POST until the queue is empty and every
   link has its event (the app's database, polled every 0.1 s). The inbound schedules
   (subscriptions, delta rounds) are removed from this deployment so that only the outbound
   side talks to Graph.

Graph requests are the fake's `request_count` (HTTP requests to /v1.0; a `$batch` is one;
token calls excluded). Goal: at most one Graph request per 15 changes, in (a) and (b). Every
series is checked against the fake's mailboxes afterwards (each event there exactly as the
last change wants it, none missing, none extra, no error in the sync log). Prints the figures,
the ratios to the baseline and PASS/MISS; exits 1 on a miss unless --no-fail. Results and how
to read them: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.e2e.events import event
from tests.e2e.harness import App
from tests.fakes import graph as graph_fake
from tests.fakes.server import FakeServer
from tests.fakes.tls import TestCA

from .common import (
    EVENTS_PATH,
    add_server_arguments,
    bench_app,
    check_loopback,
    describe,
    post_concurrently,
    verdict,
)

SOURCE_APP = "BENCHX"
GOAL_CHANGES_PER_REQUEST = 15.0
BULK = 500  # events per events_accept call / API post while seeding (the API's limit)
T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
INBOUND_SCHEDULES = ("exchange: renew subscriptions", "exchange: delta rounds")
# Of each mailbox's changes (ten by default): creates, updates, moves, the rest deletes.
MIX = (("create", 0.4), ("update", 0.3), ("move", 0.2))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_arguments(parser)
    parser.add_argument("--changes", type=int, default=1000, help="changes per series (1000)")
    parser.add_argument("--mailboxes", type=int, default=100,
                        help="synced resources, one mailbox each (100)")
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="the fake Graph's latency per HTTP request (20)")
    parser.add_argument("--mode", choices=("both", "in-process", "e2e"), default="both",
                        help="which measured series besides the baseline (both)")
    parser.add_argument("--clients", type=int, default=4,
                        help="concurrent API clients posting in the end-to-end series (4)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="give up waiting for the end-to-end pushes after this (300 s)")
    args = parser.parse_args(argv)
    if args.mailboxes < 1 or args.changes < args.mailboxes or args.clients < 1:
        parser.error("--mailboxes and --clients must be >= 1, --changes >= --mailboxes")
    check_loopback(args.database_url, "--database-url")
    check_loopback(args.redis_url, "--redis-url")
    if args.database_url and not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url takes a postgres:// URL (SQLite is the default)")
    return args


# --- The workload ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mailbox:
    resource_no: str
    email: str


@dataclass(frozen=True)
class Change:
    kind: str  # create | update | move | delete
    guid: str
    mailbox: Mailbox
    slot: int  # the appointment's place in its mailbox: its start time

    def start(self) -> datetime:
        hours = 2 if self.kind == "move" else 0
        return T0 + timedelta(days=self.slot // 4, hours=2 * (self.slot % 4) + hours)

    def subject(self, tag: str) -> str:
        suffix = " (changed)" if self.kind == "update" else ""
        return f"[{tag}] Service {self.guid[:8]}{suffix}"


@dataclass(frozen=True)
class Workload:
    tag: str  # marks this series' events in the mailboxes
    seeds: list[Change]  # created and pushed before the clock starts
    changes: list[Change]  # measured, one per appointment, creates first

    def events(self, changes: Sequence[Change], *, seeding: bool = False) -> list[dict[str, Any]]:
        """The API bodies: a seed is the appointment's create (step 0), a change its step 1."""
        return [self._event(c, seeding) for c in changes]

    def _event(self, change: Change, seeding: bool) -> dict[str, Any]:
        action = "create" if seeding else {"move": "update"}.get(change.kind, change.kind)
        shown = Change("create", change.guid, change.mailbox, change.slot) if seeding else change
        start = shown.start()
        return event(action, change.guid, SOURCE_APP, step=0 if seeding else 1,
                     resources=[{"resource_no": change.mailbox.resource_no,
                                 "email": change.mailbox.email}],
                     subject=shown.subject(self.tag), body=f"Visit {change.guid}",
                     start=_stamp(start), end=_stamp(start + timedelta(hours=1, minutes=30)),
                     job_no=f"J-{change.slot}", task_no="T-1")

    def expected(self) -> dict[str, Counter[tuple[str, str]]]:
        """Per mailbox email: the (subject, start) of each event this series should leave."""
        wanted: dict[str, Counter[tuple[str, str]]] = {}
        for change in self.changes:
            box = wanted.setdefault(change.mailbox.email, Counter())
            if change.kind != "delete":
                box[(change.subject(self.tag), _graph_time(change.start()))] += 1
        return wanted


def mailboxes(count: int) -> list[Mailbox]:
    return [Mailbox(f"R{n:03d}", f"room{n:03d}@bench.test") for n in range(count)]


def workload(tag: str, boxes: list[Mailbox], changes: int) -> Workload:
    """`changes` changes spread over the mailboxes as evenly as they divide, each mailbox's
    split by MIX (four creates, three updates, two moves and one delete of ten)."""
    seeds: list[Change] = []
    measured: list[Change] = []
    for index, box in enumerate(boxes):
        share = changes // len(boxes) + (1 if index < changes % len(boxes) else 0)
        kinds: list[str] = []
        for kind, part in MIX:
            kinds += [kind] * round(share * part)
        kinds = (kinds + ["delete"] * share)[:share]
        for slot, kind in enumerate(kinds):
            change = Change(kind, str(uuid.uuid4()), box, slot)
            measured.append(change)
            if kind != "create":
                seeds.append(change)
    order = {"create": 0, "update": 1, "move": 2, "delete": 3}
    measured.sort(key=lambda c: (order[c.kind], c.mailbox.resource_no, c.slot))
    return Workload(tag, seeds, measured)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _graph_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def mailbox_problems(state: graph_fake.GraphState, load: Workload) -> list[str]:
    """What differs between the fake's mailboxes and what the series wants (its tag only)."""
    problems = []
    for email, wanted in load.expected().items():
        found = Counter((e["subject"], e["start"]["dateTime"][:19]) for e in state.events(email)
                        if e["subject"].startswith(f"[{load.tag}]"))
        if found != wanted:
            missing, extra = wanted - found, found - wanted
            problems.append(f"{email}: missing {sorted(missing)[:3]}, extra {sorted(extra)[:3]}")
    return problems


# --- Figures -----------------------------------------------------------------------------------


@dataclass
class Series:
    name: str
    changes: int
    requests: int  # the fake's request_count over the series
    items: int  # $batch items
    wall_s: float  # from the first change accepted to the last one in Outlook
    accept_s: float  # of which: accepting the changes (in process) / posting them (end to end)
    other_calls: int = 0  # Graph calls that were neither a $batch nor one of its items
    batch_sizes: Counter[int] = field(default_factory=Counter)  # items per $batch: how many

    @property
    def per_request(self) -> float:
        return self.changes / self.requests if self.requests else float("inf")

    @property
    def rate(self) -> float:
        return self.changes / self.wall_s if self.wall_s else 0.0


def snapshot(state: graph_fake.GraphState) -> tuple[int, int, int]:
    """(requests, batch items, direct calls other than event writes) since reset_counters."""
    with state.graph_lock:
        others = sum(1 for c in state.calls if not c.batch_item and "/events" not in c.url)
        return state.request_count, state.batch_items, others


def batch_sizes(graph: FakeServer, since: int) -> Counter[int]:
    """How many `$batch` requests of each size the fake received after its request `since`."""
    with graph.httpd.lock:
        received = list(graph.requests[since:])
    return Counter(len(r.json()["requests"]) for r in received if r.path.endswith("/$batch"))


def sizes_line(sizes: Counter[int]) -> str:
    return ", ".join(f"{size} items x{count}" for size, count in sorted(sizes.items(),
                                                                        reverse=True))


def report(series: list[Series], base: Series) -> list[str]:
    """Print the table and the goals; return the names of the series that missed."""
    print(f"\n{'series':<34}{'changes':>8}{'requests':>9}{'chg/req':>8}{'items':>7}"
          f"{'accept s':>9}{'wall s':>8}{'chg/s':>8}{'x base':>7}")
    for s in [base, *series]:
        print(f"{s.name:<34}{s.changes:>8}{s.requests:>9}{s.per_request:>8.1f}{s.items:>7}"
              f"{s.accept_s:>9.2f}{s.wall_s:>8.2f}{s.rate:>8.1f}{s.rate / base.rate:>7.2f}")
    missed = []
    print()
    for s in series:
        ok = s.per_request >= GOAL_CHANGES_PER_REQUEST
        missed += [] if ok else [s.name]
        print(f"{s.name}: {s.requests} Graph requests for {s.changes} changes = one per "
              f"{s.per_request:.1f} (goal: one per >= {GOAL_CHANGES_PER_REQUEST:g}), "
              f"{base.requests / max(s.requests, 1):.1f}x fewer than the baseline, "
              f"{s.rate / base.rate:.2f}x its changes/s: {verdict(ok)}")
        if s.batch_sizes:
            print(f"  $batch sizes: {sizes_line(s.batch_sizes)}")
        if s.other_calls:
            print(f"  (of the requests, {s.other_calls} were not outbound event writes)")
    return missed


# --- In process --------------------------------------------------------------------------------


def configure_exchange(spec: dict[str, Any]) -> dict[str, int]:
    """Exchange sync on with the fake's credentials, the synced resources, and no inbound
    schedules (called in process, and in the app through `manage.py shell`)."""
    from django_q.models import Schedule

    from exchange_sync.models import ExchangeSettings, Resource

    exchange = ExchangeSettings.load()
    exchange.enabled = True
    exchange.tenant_id, exchange.client_id = spec["tenant_id"], spec["client_id"]
    exchange.client_secret = spec["client_secret"]
    exchange.save()
    Resource.objects.bulk_create([
        Resource(source_app=SOURCE_APP, resource_no=no, email=email, sync_enabled=True)
        for no, email in spec["resources"]
    ])
    removed = Schedule.objects.filter(name__in=INBOUND_SCHEDULES).delete()[0]
    return {"resources": Resource.objects.filter(sync_enabled=True).count(),
            "schedules_removed": removed}


def exchange_spec(boxes: list[Mailbox]) -> dict[str, Any]:
    return {"tenant_id": graph_fake.TENANT, "client_id": graph_fake.CLIENT_ID,
            "client_secret": graph_fake.CLIENT_SECRET,
            "resources": [(box.resource_no, box.email) for box in boxes]}


def unbatched_client() -> Any:
    """A GraphClient from the Exchange settings whose `batch()` makes one plain request per
    item (same method, URL, body and headers): the push's transport without `$batch`."""
    from exchange_sync.graph import BatchItem, BatchResult, GraphClient, GraphError
    from exchange_sync.models import ExchangeSettings

    class UnbatchedGraphClient(GraphClient):
        def batch(self, items: Sequence[BatchItem]) -> dict[str, BatchResult]:
            results = {}
            for item in items:
                try:
                    answer = self.request(item.method, item.url, json=item.body,
                                          headers=item.headers)
                    results[item.id] = BatchResult(item.id, answer.status, answer.headers,
                                                   answer.body, None)
                except GraphError as exc:
                    results[item.id] = BatchResult(item.id, exc.status_code or 0, {}, None, exc)
            return results

    return UnbatchedGraphClient.from_settings(ExchangeSettings.load())


def accept_in_process(bodies: list[dict[str, Any]]) -> None:
    """The API's path without HTTP: the event serializer, then events_accept, BULK at a time."""
    from connectors.api.serializers import EventSerializer, incoming_event
    from connectors.intake import events_accept

    for start in range(0, len(bodies), BULK):
        serializer = EventSerializer(data=bodies[start:start + BULK], many=True)
        serializer.is_valid(raise_exception=True)
        outcomes = events_accept(client=None, events=[incoming_event(data)
                                                      for data in serializer.validated_data])
        if any(outcome.status != "accepted" for outcome in outcomes):
            raise SystemExit("an event was not accepted in process")


def drain(push: Callable[[], Any]) -> None:
    """Run `push` until the queue is empty; raise if something is left or failed."""
    from exchange_sync.models import PendingSync, SyncLogEntry

    deadline = time.monotonic() + 600
    while PendingSync.objects.exists() and time.monotonic() < deadline:
        push()
    left = PendingSync.objects.values_list("last_error", flat=True)
    if left:
        raise SystemExit(f"{len(left)} appointment(s) still queued: {list(left)[:3]}")
    errors = list(SyncLogEntry.objects.filter(kind="error").values_list("message", flat=True))
    if errors:
        raise SystemExit(f"{len(errors)} error(s) in the sync log: {errors[:3]}")


def push_batched() -> None:
    from exchange_sync.outbound.push import push_all

    push_all(budget_s=600)


def push_unbatched() -> None:
    from exchange_sync.outbound.push import push_pending

    with unbatched_client() as client:
        while push_pending(client=client).claimed:
            pass


def measure_in_process(name: str, load: Workload, graph: FakeServer,
                       push: Callable[[], None]) -> Series:
    state: graph_fake.GraphState = graph.state
    bodies = load.events(load.changes)
    state.reset_counters()
    since = len(graph.requests)
    started = time.perf_counter()
    accept_in_process(bodies)
    accepted = time.perf_counter()
    drain(push)
    wall = time.perf_counter() - started
    requests, items, others = snapshot(state)
    problems = mailbox_problems(state, load)
    if problems:
        raise SystemExit(f"{name}: the mailboxes are not as wanted: {problems[:3]}")
    return Series(name, len(load.changes), requests, items, wall, accepted - started, others,
                  batch_sizes(graph, since))


def run_in_process(args: argparse.Namespace, graph: FakeServer, boxes: list[Mailbox],
                   loads: dict[str, Workload]) -> dict[str, Series]:
    """Seed every series' existing events (untimed), then measure the baseline and (a)."""
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    configure_exchange(exchange_spec(boxes))
    for load in loads.values():
        accept_in_process(load.events(load.seeds, seeding=True))
    drain(push_batched)
    results = {"base": measure_in_process("one call per change (baseline)", loads["base"],
                                          graph, push_unbatched)}
    if "in-process" in loads:
        results["in-process"] = measure_in_process("(a) in process, push_all()",
                                                   loads["in-process"], graph, push_batched)
    return results


@contextmanager
def in_process_database(args: argparse.Namespace) -> Iterator[str]:
    from .dispatch_log import postgres_database, sqlite_database

    database = (postgres_database(args.database_url, keep=False) if args.database_url
                else sqlite_database(keep=False))
    with database as url:
        yield url


def configure_django(url: str, graph: FakeServer, ca: TestCA) -> None:
    """Django in this process on the dedicated database, the ORM broker, the fake Graph."""
    from .dispatch_log import configure_django as configure

    os.environ.pop("REDIS_URL", None)  # the in-process series use no broker of their own
    os.environ.update(graph_environment(graph, ca))
    configure(url)


def graph_environment(graph: FakeServer, ca: TestCA) -> dict[str, str]:
    return {"HTTP_CA_BUNDLE": ca.ca_file, "ENTRA_AUTHORITY_HOST": graph.url,
            "GRAPH_BASE_URL": graph.url + "/v1.0"}


# --- End to end --------------------------------------------------------------------------------

SHELL_CONFIGURE = """
import json
from tests.benchmarks.exchange import configure_exchange
print(json.dumps(configure_exchange(json.loads({spec!r}))))
"""


def e2e_pushed(app: App, events: int) -> bool:
    """Whether the queue is empty (every accepted change pushed: a row leaves the queue only
    once its newest version was pushed) and exactly `events` links have an Outlook event (the
    creates' are there, the deletes' gone)."""
    if app.query("SELECT COUNT(*) AS n FROM exchange_sync_pendingsync")[0]["n"]:
        return False
    rows = app.query("SELECT COUNT(*) AS n FROM exchange_sync_eventlink WHERE event_id <> ''")
    return int(rows[0]["n"]) == events


def run_e2e(args: argparse.Namespace, graph: FakeServer, ca: TestCA, boxes: list[Mailbox],
            load: Workload) -> tuple[Series, str]:
    state: graph_fake.GraphState = graph.state
    with bench_app(args, workers=2, env=graph_environment(graph, ca)) as app:
        app.setup(connectors=[], source_apps=[SOURCE_APP])
        app.shell(SHELL_CONFIGURE.format(spec=json.dumps(exchange_spec(boxes))))
        app.start_web(web_workers=2)
        app.start_cluster()
        where = describe(app, args)
        for start in range(0, len(load.seeds), BULK):
            app.accept_events(load.events(load.seeds[start:start + BULK], seeding=True))
        app.wait(lambda: e2e_pushed(app, len(load.seeds)), timeout=args.timeout,
                 what="the seeded events in Outlook")
        time.sleep(1.5)  # a trailing doorbell task finds nothing to do
        state.reset_counters()
        since = len(graph.requests)
        live = sum(1 for c in load.changes if c.kind != "delete")
        started = time.perf_counter()
        posted = post_concurrently(app.web_url + EVENTS_PATH, load.events(load.changes),
                                   headers={"Authorization": f"Bearer {app.api_key}"},
                                   concurrency=args.clients, name="changes")
        if posted.statuses != {202: len(load.changes)}:
            raise SystemExit(f"end to end: answers {posted.statuses}")
        app.wait(lambda: e2e_pushed(app, live),
                 timeout=args.timeout, what="every change in Outlook", interval=0.1)
        wall = time.perf_counter() - started
        requests, items, others = snapshot(state)
        errors = app.query("SELECT message FROM exchange_sync_synclogentry WHERE kind = %s",
                           ["error"])
    problems = mailbox_problems(state, load) + [f"sync log: {e['message']}" for e in errors]
    if problems:
        raise SystemExit(f"end to end: {problems[:3]}")
    series = Series(f"(b) end to end, {args.clients} clients", len(load.changes), requests,
                    items, wall, posted.wall_s, others, batch_sizes(graph, since))
    return series, where


# --- Main --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    folder = Path(tempfile.mkdtemp(prefix="dimeconnect-bench-ca-"))
    try:
        ca = TestCA.create(folder)
        with graph_fake.make(ca) as graph:
            return _run(args, graph, ca)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(args: argparse.Namespace, graph: FakeServer, ca: TestCA) -> int:
    state: graph_fake.GraphState = graph.state
    boxes = mailboxes(args.mailboxes)
    for box in boxes:
        state.add_user(box.email)
    names = ["base"] + [m for m in ("in-process", "e2e") if args.mode in ("both", m)]
    loads = {name: workload(name, boxes, args.changes) for name in names}
    print(f"exchange benchmark: {args.changes} changes over {args.mailboxes} mailboxes "
          f"({dict(Counter(c.kind for c in loads['base'].changes))}), fake Graph latency "
          f"{args.latency_ms:g} ms per request", flush=True)
    with in_process_database(args) as url:
        configure_django(url, graph, ca)
        state.latency_s = args.latency_ms / 1000
        results = run_in_process(args, graph, boxes, loads)
        from .dispatch_log import environment

        print(f"in process: {environment()}", flush=True)
    series = [results[n] for n in ("in-process",) if n in results]
    if "e2e" in loads:
        e2e, where = run_e2e(args, graph, ca, boxes, loads["e2e"])
        print(f"end to end: {where}", flush=True)
        series.append(e2e)
    missed = report(series, results["base"])
    return 0 if args.no_fail or not missed else 1


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
