"""Reads for the connector health page (/dispatches/health/): per connector, over the last
24 hours and 7 days, the success rate, failed attempts, p50/p95 delivery latency; the last
error, the quarantine state and deliveries per hour.

Five queries at most, whatever the number of connectors or dispatches, each served by one
index alone (docs/BENCHMARKS.md has the plans and timings):

1. the connectors, each with correlated subqueries: dispatch counts per status and window
   (`dispatch_health`: connector, status, created_at, delivered_at), failed attempts per
   window and the ids of its latest failed and retried attempt (`attempt_health`:
   connector, outcome, started_at), and its open dispatches (held when quarantined);
2. those latest attempts (by primary key);
3. succeeded and failed dispatches per connector and hour of the last 24 h;
4. + 5. the latency percentiles of each window: ROW_NUMBER() over each connector's succeeded
   dispatches ordered by latency, keeping only the ranks wanted (one sort, a few rows back).

Per-connector subqueries instead of GROUP BY: SQLite groups by sorting every row, while an
index range per connector is counted in place.

Windows: a dispatch counts in the window it was *created* in, whatever its status became
later, so a window's figures describe the changes that came in during it; a failed attempt
counts in the window it started in. Percentiles are exact, by the nearest-rank method (the
smallest latency that at least p % of the dispatches do not exceed). Latency is
`delivered_at - created_at` of succeeded dispatches: retries and waiting included, which is
what a planner experiences.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import (
    Count,
    DurationField,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import Window
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from connectors.models import (
    OPEN_STATUSES,
    Attempt,
    AttemptOutcome,
    Connector,
    Dispatch,
    DispatchStatus,
)

DAY = timedelta(hours=24)
WEEK = timedelta(days=7)
HOURS = 24
PERCENTILES = (50, 95)
FAILING = (AttemptOutcome.RETRY, AttemptOutcome.FAILED)
FINISHED = (DispatchStatus.SUCCEEDED, DispatchStatus.FAILED)
S = DispatchStatus


# --- Native SQL for what Django would otherwise compute in a Python function on SQLite -------


class Latency(Func):
    """`delivered_at - created_at`, for ordering only: a native interval on PostgreSQL, days as
    a float on SQLite (julianday; Django's own datetime subtraction on SQLite calls a Python
    function for every row)."""

    template = "(%(expressions)s)"
    arg_joiner = " - "
    output_field = DurationField()

    def __init__(self) -> None:
        super().__init__(F("delivered_at"), F("created_at"))

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="(julianday(%(expressions)s))",
                           arg_joiner=") - julianday(", **extra)


class HoursSince(Func):
    """Whole hours from `start` to the field's time (0 for the first hour), natively."""

    template = "FLOOR(EXTRACT(EPOCH FROM (%(expressions)s)) / 3600)"
    arg_joiner = " - "
    output_field = IntegerField()

    def __init__(self, name: str, start: datetime) -> None:
        super().__init__(F(name), Value(start))

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection,
                           template="CAST((julianday(%(expressions)s)) * 24 AS INTEGER)",
                           arg_joiner=") - julianday(", **extra)


# --- What the page shows ---------------------------------------------------------------------


@dataclass
class WindowStats:
    """One connector's figures over one window."""

    succeeded: int = 0
    failed: int = 0
    failed_attempts: int = 0
    latencies: int = 0  # succeeded dispatches with a delivery time (the percentiles' base)
    percentiles_ms: dict[int, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    @property
    def success_rate(self) -> float | None:
        """succeeded / (succeeded + failed) in percent; None without a finished dispatch."""
        return 100 * self.succeeded / self.finished if self.finished else None

    @property
    def p50_ms(self) -> int | None:
        return self.percentiles_ms.get(50)

    @property
    def p95_ms(self) -> int | None:
        return self.percentiles_ms.get(95)


@dataclass
class LastError:
    dispatch_id: int
    started_at: datetime
    outcome: str
    status_code: int | None
    error_class: str
    message: str
    hint: str


@dataclass
class ConnectorHealth:
    connector: Connector
    day: WindowStats = field(default_factory=WindowStats)
    week: WindowStats = field(default_factory=WindowStats)
    hours: list[tuple[int, int]] = field(default_factory=lambda: [(0, 0)] * HOURS)
    last_error: LastError | None = None
    held: int = 0


@dataclass
class Health:
    now: datetime
    day_start: datetime
    week_start: datetime
    connectors: list[ConnectorHealth]


def nearest_rank(percentile: int, count: int) -> int:
    """The 1-based rank of the p-th percentile among `count` sorted values (count > 0)."""
    return max(1, math.ceil(percentile * count / 100))


def connector_health(*, now: datetime | None = None) -> Health:
    """Every connector's health, enabled ones first, then by name."""
    now = now or timezone.now()
    health = Health(now=now, day_start=now - DAY, week_start=now - WEEK, connectors=[])
    connectors = _with_counts(Connector.objects.order_by("-enabled", "name"), health)
    for connector in connectors:
        health.connectors.append(_from_counts(connector))
    by_id = {item.connector.pk: item for item in health.connectors}
    if by_id:
        _add_last_errors(by_id)
        _add_hours(health, by_id)
        for window in ("day", "week"):
            _add_percentiles(health, by_id, window)
    return health


def _count(queryset: QuerySet[Any]) -> Coalesce:
    """COUNT(*) of `queryset` (filtered on OuterRef("pk")) as a correlated subquery."""
    counted = queryset.order_by().values("connector_id").annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _latest(outcome: str) -> Subquery:
    """The id of the connector's latest attempt with this outcome (an index's last entry)."""
    latest = Attempt.objects.filter(connector_id=OuterRef("pk"), outcome=outcome)
    return Subquery(latest.order_by("-started_at", "-id").values("id")[:1])


def _with_counts(connectors: QuerySet[Connector], health: Health) -> QuerySet[Connector]:
    mine = Dispatch.objects.filter(connector_id=OuterRef("pk"))
    failing = Attempt.objects.filter(connector_id=OuterRef("pk"), outcome__in=FAILING)
    counts: dict[str, Any] = {
        "held_n": _count(mine.filter(status__in=OPEN_STATUSES)),
        "last_failed_id": _latest(AttemptOutcome.FAILED),
        "last_retry_id": _latest(AttemptOutcome.RETRY),
    }
    for window, since in (("day", health.day_start), ("week", health.week_start)):
        recent = mine.filter(created_at__gte=since)
        counts[f"{window}_ok"] = _count(recent.filter(status=S.SUCCEEDED))
        counts[f"{window}_failed"] = _count(recent.filter(status=S.FAILED))
        counts[f"{window}_latencies"] = _count(
            recent.filter(status=S.SUCCEEDED, delivered_at__isnull=False))
        counts[f"{window}_attempts"] = _count(failing.filter(started_at__gte=since))
    return connectors.annotate(**counts)


def _from_counts(connector: Any) -> ConnectorHealth:
    item = ConnectorHealth(connector=connector, held=connector.held_n)
    for window in ("day", "week"):
        stats = _stats(item, window)
        stats.succeeded = getattr(connector, f"{window}_ok")
        stats.failed = getattr(connector, f"{window}_failed")
        stats.latencies = getattr(connector, f"{window}_latencies")
        stats.failed_attempts = getattr(connector, f"{window}_attempts")
    return item


def _stats(item: ConnectorHealth, window: str) -> WindowStats:
    return item.day if window == "day" else item.week


def _add_last_errors(by_id: dict[int, ConnectorHealth]) -> None:
    """The later of each connector's latest failed and latest retried attempt."""
    ids = [pk for item in by_id.values() for name in ("last_failed_id", "last_retry_id")
           if (pk := getattr(item.connector, name)) is not None]
    if not ids:
        return
    attempts = (
        Attempt.objects.filter(id__in=ids)
        .values_list("connector_id", "dispatch_id", "started_at", "outcome", "status_code",
                     "error_class", "message", "hint")
        .order_by("started_at", "id")
    )
    for connector_id, dispatch_id, at, outcome, code, error_class, message, hint in attempts:
        by_id[connector_id].last_error = LastError(  # the later one overwrites
            dispatch_id=dispatch_id, started_at=at, outcome=outcome, status_code=code,
            error_class=error_class, message=message, hint=hint,
        )


def _add_hours(health: Health, by_id: dict[int, ConnectorHealth]) -> None:
    rows = (
        Dispatch.objects.filter(connector_id__in=list(by_id), status__in=FINISHED,
                                created_at__gte=health.day_start, created_at__lt=health.now)
        .annotate(hour=HoursSince("created_at", health.day_start))
        .values_list("connector_id", "status", "hour")
        .annotate(n=Count("*"))
        .order_by()
    )
    hours: dict[int, list[list[int]]] = defaultdict(lambda: [[0, 0] for _ in range(HOURS)])
    for connector_id, status, hour, n in rows:
        hour = min(max(int(hour), 0), HOURS - 1)  # a float rounding at a bucket's edge
        hours[connector_id][hour][0 if status == S.SUCCEEDED else 1] += n
    for connector_id, buckets in hours.items():
        by_id[connector_id].hours = [(ok, failed) for ok, failed in buckets]


def _add_percentiles(health: Health, by_id: dict[int, ConnectorHealth], window: str) -> None:
    """The dispatches at the wanted latency ranks of each connector: one sort in the database
    (carrying only the id), a handful of rows back."""
    wanted = {
        pk: sorted({nearest_rank(p, _stats(item, window).latencies) for p in PERCENTILES})
        for pk, item in by_id.items() if _stats(item, window).latencies
    }
    if not wanted:
        return
    since = health.day_start if window == "day" else health.week_start
    ranked = (
        Dispatch.objects.filter(connector_id__in=list(wanted), status=S.SUCCEEDED,
                                created_at__gte=since, delivered_at__isnull=False)
        .annotate(rank=Window(RowNumber(), partition_by=[F("connector_id")],
                              order_by=[Latency().asc()]))
        .filter(reduce(or_, (Q(connector_id=pk, rank__in=ranks) for pk, ranks in wanted.items())))
        .values("id")
        .order_by()  # the model's ordering would sort every row of the window again
    )
    found: dict[int, list[timedelta]] = defaultdict(list)
    rows = Dispatch.objects.filter(id__in=ranked).values_list(
        "connector_id", "created_at", "delivered_at").order_by()
    for pk, created, delivered in rows:
        if delivered is not None:  # as filtered; this tells the type checker
            found[pk].append(delivered - created)
    for pk, ranks in wanted.items():
        # Ranks ascend with latency, so the sorted latencies are the wanted ranks in order.
        at_rank = dict(zip(ranks, sorted(found[pk]), strict=False))
        stats = _stats(by_id[pk], window)
        for p in PERCENTILES:
            latency = at_rank.get(nearest_rank(p, stats.latencies))
            if latency is not None:
                stats.percentiles_ms[p] = round(latency / timedelta(milliseconds=1))
