"""Reads on the event intake's path, written as SQL.

Every event post runs a few small reads (is this event id known, which connectors match, is a
backlog task waiting). Django builds a query anew on every call: 0.3-0.6 ms of Python each on
the benchmark machine, against 0.01 ms (SQLite) to 0.25 ms (PostgreSQL) to run it, a fifth of
a single post's work (docs/BENCHMARKS.md). Those reads are written out once, in SQL that
SQLite and PostgreSQL both run; everything else uses the ORM. Their tests are the behaviour's:
duplicates, connector matching and ringing are tested through the intake and delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections


def first_column(sql: str, params: Sequence[Any]) -> list[Any]:
    """The first column of every row the query returns."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def placeholders(count: int) -> str:
    """`%s, %s, …` for an IN list of `count` values."""
    return ", ".join(["%s"] * count)


def datetime_param(value: datetime) -> Any:
    """A datetime as the database stores it (SQLite: UTC text; PostgreSQL: the value)."""
    return connections[DEFAULT_DB_ALIAS].ops.adapt_datetimefield_value(value)
