"""Benchmark: delivering dispatches to a webhook with a running qcluster.

    python -m tests.benchmarks.dispatch                      # SQLite, the ORM broker
    python -m tests.benchmarks.dispatch --redis-url redis://127.0.0.1:6379/15
    python -m tests.benchmarks.dispatch --database-url postgres://root@127.0.0.1:5432/postgres \\
        --redis-url redis://127.0.0.1:6379/15

Deploys the app in real processes on a dedicated database (tests/benchmarks/common.py) with one
webhook connector pointing at the loopback receiver (tests/fakes/webhook_receiver.py, which
verifies every Standard Webhooks signature), then:

1. baseline: --events signed payloads of the same shape and size, POSTed by raw httpx from a
   separate process with as many threads as the cluster has workers (--workers), keep-alive;
   run before and after the cluster's run, and the faster of the two counted.
2. throughput: --events events accepted (bulk posts) while no cluster runs, then one `qcluster`
   with --workers workers is started and drains them. Both series are timed at the receiver,
   from its first to its last delivery. Goal: >= 0.5 x the raw deliveries per second.
3. latency: with the cluster running, single events posted at a steady --rate per second for
   --paced-seconds; for each, accepted (event received_at) to delivered (dispatch
   delivered_at). Goal: p95 under 1 s.

Checks that every dispatch succeeded and the receiver got each exactly once. Prints the figures
and PASS/MISS per goal; exits 1 on a miss unless --no-fail. Results: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import Any

import httpx

from tests.e2e.events import appointment, event
from tests.e2e.harness import App
from tests.fakes import webhook_receiver

from .common import EVENTS_PATH, add_server_arguments, bench_app, describe, percentile, verdict

SOURCE_APP = "BENCHD"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BULK = 500
THROUGHPUT_GOAL = 0.5
P95_GOAL_S = 1.0


class TimedList(list):  # type: ignore[type-arg]
    """The receiver's list of accepted deliveries, noting when each arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item: Any) -> None:
        self.times.append(time.monotonic())
        super().append(item)

    def clear(self) -> None:
        self.times.clear()
        super().clear()

    def span(self) -> float:
        return self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_arguments(parser)
    parser.add_argument("--events", type=int, default=2000, help="events to deliver (2000)")
    parser.add_argument("--workers", type=int, default=2,
                        help="the cluster's workers (Q_WORKERS) = the baseline's threads (2)")
    parser.add_argument("--rate", type=float, default=50.0, help="paced events per second (50)")
    parser.add_argument("--paced-seconds", type=float, default=20.0,
                        help="length of the paced run (20)")
    return parser.parse_args(argv)


# --- The raw baseline, in a process of its own ---------------------------------------------


def raw_bodies(count: int) -> list[bytes]:
    """Bodies as the webhook client sends them (type, timestamp, the appointment)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return [json.dumps({"type": "appointment.created", "timestamp": now,
                        "data": appointment(str(uuid.uuid4()), SOURCE_APP)},
                       separators=(",", ":")).encode() for _ in range(count)]


def raw_post(url: str, count: int, threads: int) -> int:
    """POST `count` signed bodies from `threads` threads; returns how many got a 2xx."""
    from connectors.backoffices import signing

    bodies = raw_bodies(count)
    lock = threading.Lock()
    position = iter(range(count))
    ok = [0]

    def worker() -> None:
        with httpx.Client(timeout=30, trust_env=False) as client:
            while True:
                with lock:
                    index = next(position, None)
                if index is None:
                    return
                body = bodies[index]
                headers = {"Content-Type": "application/json",
                           **signing.headers([SECRET], f"msg_{uuid.uuid4().hex}",
                                             int(time.time()), body)}
                if client.post(url, content=body, headers=headers).is_success:
                    with lock:
                        ok[0] += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return ok[0]


def measure_raw(receiver: Any, count: int, threads: int) -> float:
    """Deliveries per second of the raw baseline, timed at the receiver."""
    receiver.state.deliveries.clear()
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        ok = pool.submit(raw_post, receiver.url + "/hooks/raw", count, threads).result()
    if ok != count:
        raise SystemExit(f"raw baseline: only {ok} of {count} posts were accepted")
    return count / receiver.state.deliveries.span()


# --- The cluster ----------------------------------------------------------------------------


def measure_cluster(app: App, receiver: Any, count: int) -> float:
    """Accept `count` events with no cluster running, start one, and time its deliveries."""
    receiver.state.deliveries.clear()
    for start in range(0, count, BULK):
        size = min(BULK, count - start)
        app.accept_events([event("create", str(uuid.uuid4()), SOURCE_APP)
                           for _ in range(size)])
    app.start_cluster()
    app.wait(lambda: len(receiver.state.deliveries) >= count, timeout=max(120, count / 5),
             what=f"{count} deliveries", interval=0.05)
    return count / receiver.state.deliveries.span()


def paced_latencies(app: App, rate: float, seconds: float) -> list[float]:
    """Post single events at `rate` per second for `seconds`; returns accepted-to-delivered
    latencies (s) of their dispatches."""
    total = max(1, int(rate * seconds))
    lock = threading.Lock()
    position = iter(range(total))
    started = time.monotonic() + 0.2
    failures: list[int] = []

    def worker() -> None:
        with httpx.Client(timeout=30, trust_env=False) as client:
            while True:
                with lock:
                    index = next(position, None)
                if index is None:
                    return
                time.sleep(max(0.0, started + index / rate - time.monotonic()))
                body = event("create", str(uuid.uuid4()), SOURCE_APP,
                             event_id=f"paced-{index}")
                answer = client.post(app.web_url + EVENTS_PATH, json=body,
                                     headers={"Authorization": f"Bearer {app.api_key}"})
                if answer.status_code != 202:
                    failures.append(answer.status_code)

    pool = [threading.Thread(target=worker) for _ in range(4)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if failures:
        raise SystemExit(f"paced run: {len(failures)} posts were not accepted: {failures[:5]}")
    rows = app.wait(lambda: _paced_rows(app, total), timeout=60, what="paced dispatches")
    return [(_when(r["delivered_at"]) - _when(r["received_at"])).total_seconds() for r in rows]


def _paced_rows(app: App, total: int) -> list[dict[str, Any]] | None:
    rows = app.query(
        "SELECT e.received_at, d.delivered_at FROM connectors_dispatch d"
        " JOIN connectors_appointmentevent e ON e.id = d.event_id"
        " WHERE e.event_id LIKE %s AND d.status = %s", ["paced-%", "succeeded"])
    return rows if len(rows) == total else None


def _when(value: Any) -> datetime:
    """A datetime column as an aware datetime (SQLite returns text)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_exactly_once(app: App, receiver: Any, expected: int) -> list[str]:
    ids = [d.header("webhook-id") for d in receiver.state.deliveries]
    statuses = app.statuses(SOURCE_APP)
    problems = []
    if statuses != {"succeeded": expected}:
        problems.append(f"dispatch statuses {statuses}, expected {expected} succeeded")
    if len(ids) != len(set(ids)):
        problems.append(f"{len(ids) - len(set(ids))} deliveries arrived twice")
    return problems


def run(args: argparse.Namespace) -> int:
    with webhook_receiver.make(secrets=[SECRET]) as receiver:
        receiver.state.deliveries = TimedList()
        with bench_app(args, workers=args.workers) as app:
            hook = {"name": "Bench hook", "type": "webhook", "api_type": "rest",
                    "auth_type": "none", "uri": receiver.url + "/hooks/dime",
                    "source_app": SOURCE_APP, "signing_secret": SECRET, "timeout_s": 5}
            app.setup(connectors=[hook], source_apps=[SOURCE_APP])
            app.start_web()
            print(f"dispatch benchmark: {describe(app, args)}")
            print(f"{args.events} events, {args.workers} cluster workers = baseline threads; "
                  f"paced {args.rate:g}/s for {args.paced_seconds:g} s", flush=True)
            # The raw baseline before and after the cluster's run, the faster one counted: a
            # short run is at the mercy of other load on the machine, and the faster baseline
            # is the stricter measure for the cluster.
            raw_before = measure_raw(receiver, args.events, args.workers)
            cluster = measure_cluster(app, receiver, args.events)
            latencies = paced_latencies(app, args.rate, args.paced_seconds)
            paced = int(args.rate * args.paced_seconds) or 1
            problems = check_exactly_once(app, receiver, args.events + paced)
            raw_after = measure_raw(receiver, args.events, args.workers)
            raw = max(raw_before, raw_after)
    ratio = cluster / raw if raw else 0.0
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    print(f"\n{'series':<28}{'deliveries/s':>13}{'x base':>8}")
    print(f"{'raw httpx (baseline)':<28}{raw:>13.1f}{1:>8.2f}"
          f"   (before {raw_before:.1f}, after {raw_after:.1f}: the faster)")
    print(f"{'qcluster':<28}{cluster:>13.1f}{ratio:>8.2f}")
    print(f"\npaced {args.rate:g}/s: {len(latencies)} events, accepted -> delivered "
          f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    throughput_ok, latency_ok = ratio >= THROUGHPUT_GOAL, p95 < P95_GOAL_S
    print(f"\nthroughput {ratio:.2f} x raw (goal >= {THROUGHPUT_GOAL}): {verdict(throughput_ok)}")
    print(f"latency p95 {p95:.3f} s (goal < {P95_GOAL_S:g} s): {verdict(latency_ok)}")
    for problem in problems:
        print(f"ERROR: {problem}")
    if problems:
        return 1
    return 0 if args.no_fail or (throughput_ok and latency_ok) else 1


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
