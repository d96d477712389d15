"""Benchmark: the dispatch log pages with 100,000 dispatches and 300,000 attempts.

    python -m tests.benchmarks.dispatch_log                      # a temporary SQLite file
    python -m tests.benchmarks.dispatch_log --database-url postgres://root@127.0.0.1:5432/postgres

Seeds a *dedicated* database (a new temporary SQLite file, or a new PostgreSQL database named
dimeconnect_bench_<random> created beside the one in the URL and dropped afterwards; never the
test database, never an existing one), logs in a Support user and renders each page in process
with Django's test client: median and p95 of --runs renders, round-robin so that load from
other processes hits every page alike, the query count of one more render, and each median as
a ratio to a baseline page measured in the same run (admin/base_site.html behind the same
middleware, login and permission check). Exits 1 when a page's median exceeds --limit-ms
(300), unless --no-fail. Results and how to read them: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
BENCH_KEY = "YmVuY2htYXJrLWtleS1kby1ub3QtdXNlLTEyMzQ1Njc="  # a Fernet key for the seeded rows


@dataclass
class Page:
    name: str
    url: str
    required: bool = True  # counts against --limit-ms


@dataclass
class Result:
    page: Page
    times_ms: list[float]
    queries: int
    status: int

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.times_ms)
        return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]  # nearest rank


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="",
                        help="postgres://user@127.0.0.1:5432/maintenance_db: benchmark on a new "
                        "PostgreSQL database on that server (default: a temporary SQLite file)")
    parser.add_argument("--dispatches", type=int, default=100_000)
    parser.add_argument("--attempts", type=int, default=300_000)
    parser.add_argument("--connectors", type=int, default=20)
    parser.add_argument("--days", type=float, default=14.0,
                        help="the log spans this many days (default 14: half of it in the "
                        "health page's 7-day window)")
    parser.add_argument("--runs", type=int, default=30, help="timed renders per page")
    parser.add_argument("--limit-ms", type=float, default=300.0)
    parser.add_argument("--no-fail", action="store_true", help="report only; always exit 0")
    parser.add_argument("--explain", action="store_true",
                        help="print the query plan of every query of every page")
    parser.add_argument("--keep", action="store_true",
                        help="keep the seeded database afterwards (its URL is printed)")
    return parser.parse_args(argv)


# --- The dedicated database -------------------------------------------------------------------


@contextmanager
def sqlite_database(keep: bool) -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="dimeconnect-bench-")
    try:
        yield f"sqlite:///{folder}/bench.sqlite3"
    finally:
        if keep:
            print(f"kept: sqlite:///{folder}/bench.sqlite3")
        else:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_database(url: str, keep: bool) -> Iterator[str]:
    """Create dimeconnect_bench_<random> on the server of `url` (whose database is only used to
    connect), yield its URL, and drop it afterwards."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        raise SystemExit(f"Refusing {parts.hostname}: benchmarks run against 127.0.0.1 only.")
    name = f"dimeconnect_bench_{secrets.token_hex(4)}"
    admin_url = urlunsplit(parts._replace(scheme="postgresql",
                                          path=parts.path.rstrip("/") or "/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            raise SystemExit(f"{name} exists already; refusing to touch it.")
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    bench_url = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        yield bench_url
    finally:
        from django.db import connections

        connections.close_all()
        if keep:
            print(f"kept: {bench_url}")
        else:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                              .format(sql.Identifier(name)))


def configure_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DIMECONNECT_ENV_FILE"] = ""  # never a developer's .env
    os.environ["DEBUG"] = "False"  # as in production: no query log, cached templates
    os.environ["DJANGO_SETTINGS_MODULE"] = "dimeconnect.settings"
    for name, value in {
        "SECRET_KEY": "benchmark-secret-key-not-for-production-0123456789",
        "FIELD_ENCRYPTION_KEYS": BENCH_KEY, "ALLOWED_HOSTS": "*",
        "STATICFILES_MANIFEST": "False",
    }.items():
        os.environ.setdefault(name, value)
    import django

    django.setup()


# --- Seeding and measuring ----------------------------------------------------------------------


def seed(args: argparse.Namespace) -> dict[str, object]:
    from django.core.management import call_command
    from django.db import connection

    from tests.benchmarks.seed import seed_dispatch_log

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    result = seed_dispatch_log(dispatches=args.dispatches, attempts=args.attempts,
                               connectors=args.connectors, days=args.days)
    if connection.vendor == "postgresql":  # what autovacuum does within a minute of a load
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    print(f"seeded {result.dispatches:,} dispatches, {result.attempts:,} attempts, "
          f"{len(result.connectors)} connectors over {args.days:g} days "
          f"in {time.perf_counter() - started:.0f} s")
    return result.sample


def pages(sample: dict[str, object]) -> list[Page]:
    return [
        Page("baseline (admin frame)", "/__benchmark__/baseline/", required=False),
        Page("list", "/dispatches/"),
        Page("search: job no", f"/dispatches/?q={sample['job_no']}"),
        Page("search: GUID", f"/dispatches/?q={sample['guid']}"),
        Page("list, page 50", "/dispatches/?page=50"),
        Page("detail", f"/dispatches/{sample['dispatch_id']}/"),
        Page("health", "/dispatches/health/"),
        Page("admin changelist (info)", "/admin/connectors/dispatch/", required=False),
    ]


def support_client() -> object:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    user = get_user_model().objects.create_user("bench.support", is_staff=True)
    user.groups.add(Group.objects.get(name="Support"))
    client = Client()
    client.force_login(user)
    return client


def measure(client: object, all_pages: list[Page], runs: int, explain: bool) -> list[Result]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.benchmarks.seed import SECRETS

    times: dict[str, list[float]] = {page.name: [] for page in all_pages}
    results = []
    for page in all_pages:  # warm-up, status, secrets, query count
        client.get(page.url)  # type: ignore[attr-defined]
        with CaptureQueriesContext(connection) as queries:
            response = client.get(page.url)  # type: ignore[attr-defined]
        leaked = [name for name, value in SECRETS.items() if value.encode() in response.content]
        if leaked:
            raise SystemExit(f"{page.name}: the page shows the connector's {leaked}!")
        results.append(Result(page, times[page.name], len(queries), response.status_code))
        if explain:
            print_plans(page, [query["sql"] for query in queries.captured_queries])
    for _ in range(runs):  # round-robin: background load hits every page alike
        for page in all_pages:
            started = time.perf_counter()
            client.get(page.url)  # type: ignore[attr-defined]
            times[page.name].append((time.perf_counter() - started) * 1000)
    return results


def print_plans(page: Page, queries: list[str]) -> None:
    from django.db import connection

    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    print(f"\n=== {page.name}: {page.url}")
    for sql in queries:
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        print(f"\n{sql}")
        with connection.cursor() as cursor:
            cursor.execute(prefix + sql)
            for row in cursor.fetchall():
                print(f"    {row[-1]}")


def report(results: list[Result], limit_ms: float) -> list[str]:
    """Print the table; return the names of required pages over the limit."""
    base = next(r for r in results if r.page.name.startswith("baseline")).median
    print(f"\n{'page':<26}{'median ms':>10}{'p95 ms':>9}{'× base':>8}{'queries':>9}  status")
    slow = []
    for r in results:
        over = r.page.required and r.median > limit_ms
        slow += [r.page.name] if over else []
        flag = " SLOW" if over else ""
        print(f"{r.page.name:<26}{r.median:>10.1f}{r.p95:>9.1f}{r.median / base:>8.1f}"
              f"{r.queries:>9}  {r.status}{flag}")
    return slow


def environment() -> str:
    import django
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sqlite_version()" if connection.vendor == "sqlite"
                       else "SHOW server_version")
        version = cursor.fetchone()[0]
    return (f"{connection.vendor} {version}, Django {django.get_version()}, Python "
            f"{platform.python_version()}, {os.cpu_count()} CPU(s)")


def run(args: argparse.Namespace, database_url: str) -> int:
    configure_django(database_url)
    from django.test.utils import override_settings

    sample = seed(args)
    with override_settings(ROOT_URLCONF="tests.benchmarks.urls"):
        all_pages = pages(sample)
        results = measure(support_client(), all_pages, args.runs, args.explain)
    print(f"\n{environment()}; {args.runs} renders per page, limit {args.limit_ms:g} ms median")
    slow = report(results, args.limit_ms)
    failed = [r.page.name for r in results if r.status != 200]
    if failed:
        print(f"\nnot 200: {', '.join(failed)}")
    if slow:
        print(f"\nover {args.limit_ms:g} ms: {', '.join(slow)}")
    return 0 if args.no_fail or not (slow or failed) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.database_url and not args.database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("--database-url takes a postgres:// URL (SQLite is the default).")
    database = (postgres_database(args.database_url, args.keep) if args.database_url
                else sqlite_database(args.keep))
    with database as url:
        return run(args, url)


if __name__ == "__main__":
    sys.exit(main())
