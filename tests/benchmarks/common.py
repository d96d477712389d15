"""What the HTTP benchmarks (intake.py, dispatch.py) share: a deployment of the app in real
processes (the e2e harness) on a dedicated database, concurrent clients, and the figures.

The database is a new SQLite file in a temporary folder, or with `--database-url` a new
PostgreSQL database on that (loopback) server, dropped afterwards; `--redis-url` selects the
Redis broker (the run's keys live under a name of their own and are deleted afterwards).
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.e2e.backends import PostgresDatabase, SqliteDatabase
from tests.e2e.harness import App
from tests.support import web_client

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
EVENTS_PATH = "/api/v1/appointments/events/"


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default="",
                        help="postgres://user@127.0.0.1:5432/postgres: run on a new PostgreSQL "
                        "database on that server, dropped afterwards (default: a temporary "
                        "SQLite file)")
    parser.add_argument("--redis-url", default="",
                        help="redis://127.0.0.1:6379/15: the django-q2 Redis broker (default: "
                        "the ORM broker)")
    parser.add_argument("--no-fail", action="store_true", help="report only; always exit 0")


def check_loopback(url: str, what: str) -> None:
    host = urlsplit(url).hostname
    if url and host not in LOOPBACK:
        raise SystemExit(f"Refusing {what} on {host}: benchmarks run against 127.0.0.1 only.")


@contextmanager
def bench_app(args: argparse.Namespace, *, workers: int = 2,
              env: dict[str, str] | None = None) -> Iterator[App]:
    """A harness App (not set up yet) on a dedicated database; closed (processes stopped,
    database dropped, Redis keys deleted) on exit."""
    check_loopback(args.database_url, "--database-url")
    check_loopback(args.redis_url, "--redis-url")
    if args.database_url and not args.database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("--database-url takes a postgres:// URL (SQLite is the default).")
    folder = Path(tempfile.mkdtemp(prefix="dimeconnect-bench-"))
    database = (PostgresDatabase(args.database_url) if args.database_url
                else SqliteDatabase(folder / "bench.sqlite3"))
    app = App(folder, workers=workers, database=database, redis=args.redis_url)
    # INFO logging stays on (the harness waits for qcluster's "running."), as in production.
    app.env.update(DJANGO_SETTINGS_MODULE="tests.benchmarks.settings", API_RATE="",
                   **(env or {}))
    try:
        yield app
    finally:
        app.close()
        shutil.rmtree(folder, ignore_errors=True)


def describe(app: App, args: argparse.Namespace) -> str:
    """The database, broker and machine, for the figures' heading."""
    if app.database.vendor == "sqlite":
        version = "SQLite " + app.query("SELECT sqlite_version() AS v")[0]["v"]
    else:
        version = "PostgreSQL " + app.query("SHOW server_version")[0]["server_version"]
    broker = "Redis broker" if args.redis_url else "ORM broker"
    return (f"{version}, {broker}; Python {platform.python_version()}, "
            f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}")


def new_key() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Run:
    """Timings of one measured series of requests."""

    name: str
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    items: int = 0  # events sent (a bulk request carries many)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return len(self.latencies_s) / self.wall_s if self.wall_s else 0.0

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s if self.wall_s else 0.0

    def percentile_ms(self, p: float) -> float:
        return percentile(self.latencies_s, p) * 1000

    def merge(self, other: Run) -> None:
        self.latencies_s += other.latencies_s
        self.wall_s += other.wall_s
        self.items += other.items
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, -(-int(p) * len(ordered) // 100) - 1)]


def post_concurrently(url: str, bodies: Sequence[Any], *, headers: dict[str, str],
                      concurrency: int, name: str, items_per_body: int = 1) -> Run:
    """POST every body (JSON) to `url` from `concurrency` threads, each with its own
    keep-alive client; returns the latencies and the wall time of the whole series."""
    run = Run(name, items=len(bodies) * items_per_body)
    lock = threading.Lock()
    position = iter(range(len(bodies)))

    def worker() -> None:
        with web_client(timeout=60) as client:
            while True:
                with lock:
                    index = next(position, None)
                if index is None:
                    return
                started = time.perf_counter()
                response = client.post(url, json=bodies[index], headers=headers)
                elapsed = time.perf_counter() - started
                with lock:
                    run.latencies_s.append(elapsed)
                    run.statuses[response.status_code] = (
                        run.statuses.get(response.status_code, 0) + 1)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.wall_s = time.perf_counter() - started
    return run


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def timed(what: str, action: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = action()
    print(f"  {what}: {time.perf_counter() - started:.1f} s", flush=True)
    return result


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0
