"""The database and broker servers an end-to-end App runs on, chosen the way the app chooses:
from DATABASE_URL and REDIS_URL.

Each App gets a database of its own, made for it and dropped afterwards: a SQLite file in its
workdir by default, or, when DATABASE_URL points at PostgreSQL (CI's second pass), a uniquely
named database on that server. The database DATABASE_URL names (the suite's own) is never
used by an App. `query()` reads the app's database from the test process (`%s` placeholders),
never through Django's connection, which belongs to the test process's own settings.
"""

from __future__ import annotations

import abc
import os
import sqlite3
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")


class Database(abc.ABC):
    """A database made for one App. `url` is the app's DATABASE_URL."""

    url: str
    vendor: str

    @abc.abstractmethod
    def create(self) -> None:
        """Make the (empty) database; `manage.py migrate` fills it."""

    @abc.abstractmethod
    def drop(self) -> None:
        """Remove it, also while a process still holds a connection."""

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of one statement as dicts, in a short transaction of its own."""


class SqliteDatabase(Database):
    """A SQLite file; the app's first connection creates it (and switches it to WAL)."""

    vendor = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def create(self) -> None:
        pass

    def drop(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        db = sqlite3.connect(self.path, timeout=20)  # waits out a writer's lock
        try:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(sql.replace("%s", "?"), tuple(params))]
        finally:
            db.close()


class PostgresDatabase(Database):
    """`dimeconnect_e2e_<hex>` on the server `server_url` points at, created and dropped from
    the server's `postgres` maintenance database (or, if that is not reachable, from the
    database `server_url` names, whose contents are never touched)."""

    vendor = "postgresql"

    def __init__(self, server_url: str) -> None:
        self.name = f"dimeconnect_e2e_{uuid.uuid4().hex[:12]}"
        parts = urlsplit(libpq_url(server_url))
        self.url = urlunsplit(parts._replace(path=f"/{self.name}"))
        self._admin_urls = [urlunsplit(parts._replace(path="/postgres")), urlunsplit(parts)]

    def create(self) -> None:
        self._admin(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with connect(self.url) as db, db.cursor(row_factory=dict_row) as cursor:
            cursor.execute(sql, tuple(params))
            return list(cursor.fetchall())

    def _admin(self, statement: str) -> None:
        import psycopg

        for number, url in enumerate(self._admin_urls, start=1):
            try:
                with connect(url) as admin:
                    admin.execute(statement)
                return
            except psycopg.OperationalError:
                if number == len(self._admin_urls):
                    raise


def connect(url: str) -> Any:
    """An autocommit psycopg connection."""
    import psycopg

    return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10)


def libpq_url(url: str) -> str:
    """django-environ also accepts postgres:// and pgsql://; libpq wants postgresql://."""
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme in POSTGRES_SCHEMES else url


def database_url() -> str:
    return os.environ.get("DATABASE_URL", "")


def uses_postgresql() -> bool:
    """Whether this run targets PostgreSQL (CI's second pass): DATABASE_URL says so."""
    return database_url().partition("://")[0] in POSTGRES_SCHEMES


def fresh_database(workdir: Path) -> Database:
    """A new database for one App: PostgreSQL when DATABASE_URL points at it, else SQLite."""
    if uses_postgresql():
        return PostgresDatabase(database_url())
    return SqliteDatabase(workdir / "db.sqlite3")


# Where tests that need a server whatever this run uses (the fault suite, scale-out) find one
# when DATABASE_URL / REDIS_URL do not name it: the machine's own, as in CI.
LOCAL_POSTGRESQL = "postgres://root@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/15"


def postgresql_server_url() -> str:
    """DATABASE_URL when it is PostgreSQL, else the local server (LOCAL_POSTGRESQL)."""
    return database_url() if uses_postgresql() else LOCAL_POSTGRESQL


def redis_server_url() -> str:
    """REDIS_URL when set, else the local server's database 15 (LOCAL_REDIS)."""
    return redis_url() or LOCAL_REDIS


def postgresql_reachable(url: str = "") -> bool:
    """Whether the PostgreSQL server of `url` (default DATABASE_URL) answers."""
    try:
        with connect(url or database_url()):
            return True
    except Exception:
        return False


def redis_url() -> str:
    """REDIS_URL as the run was given it ("" = the ORM broker)."""
    return os.environ.get("REDIS_URL", "")


def redis_reachable(url: str = "") -> bool:
    """Whether the Redis server of `url` (default REDIS_URL) answers."""
    import redis

    try:
        return bool(redis.Redis.from_url(url or redis_url(), socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def redis_keys(pattern: str, *, url: str = "") -> list[bytes]:
    """The keys matching `pattern` in the database of `url` (default REDIS_URL)."""
    import redis

    return list(redis.Redis.from_url(url or redis_url(), socket_connect_timeout=2)
                .scan_iter(match=pattern, count=500))


def delete_redis_keys(pattern: str, *, url: str = "") -> None:
    """Delete the keys matching `pattern` (a run's queue and stats) in the database of `url`
    (default REDIS_URL); errors are only printed."""
    import redis

    try:
        keys = redis_keys(pattern, url=url)
        if keys:
            redis.Redis.from_url(url or redis_url(), socket_connect_timeout=2).delete(*keys)
    except redis.RedisError as exc:
        print(f"e2e: could not delete Redis keys {pattern}: {exc}", file=sys.stderr)
