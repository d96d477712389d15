"""Times as the Exchange sync reads and writes them: Graph timestamps, the sync window.

One place for what the outbound and inbound sides must agree on (the same window for the push,
the delta rounds and `sync_exchange --full`; the same parsing of Graph's and the planner's
timestamps).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from .models import ExchangeSettings

_TIMESTAMP = re.compile(r"([^.+]+)(\.\d+)?([+-]\d{2}:\d{2})?")


def parse_utc(value: Any) -> datetime | None:
    """An ISO 8601 timestamp (Graph's "2026-03-02T08:15:03.1234567Z", the planner's
    "2026-03-02T08:15:03Z", an offset, or none: UTC) as an aware UTC datetime; None when
    absent. Raises ValueError naming a value that is not a timestamp."""
    if not value:
        return None
    text = str(value).strip().replace("Z", "+00:00")
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"not a timestamp: {value!r}")
    main, fraction, zone = match.groups()
    parsed = datetime.fromisoformat(main + (fraction or "")[:7] + (zone or ""))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def utc_text(moment: datetime) -> str:
    """The planner's and Graph's query form: "2026-03-02T08:15:03Z"."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sync_window(exchange: ExchangeSettings, now: datetime | None = None
                ) -> tuple[datetime, datetime]:
    """The sync window, whole UTC days: from midnight `window_past_days` back to the midnight
    after `window_future_days` ahead (so it moves once a day, not on every round)."""
    now = now or timezone.now()
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day - timedelta(days=exchange.window_past_days),
            day + timedelta(days=exchange.window_future_days + 1))


def overlaps(data: Mapping[str, Any], start: datetime, end: datetime) -> bool:
    """Whether an appointment (its event-API JSON) overlaps [start, end)."""
    first, last = parse_utc(data.get("start")), parse_utc(data.get("end"))
    return first is not None and last is not None and last >= start and first < end
