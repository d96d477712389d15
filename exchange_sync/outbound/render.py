"""An appointment as a Microsoft Graph event, and the hash of what was written.

Times are sent in UTC (`timeZone: "UTC"`, and every call carries `Prefer:
outlook.timezone="UTC"`). All-day events must start and end at midnight (Graph refuses
others), so they cover the days the appointment touches. `importance` (an integer in the event
API) maps to Graph's low / normal / high: below 0 low, 0 normal, above 0 high.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.models import Appointment

from ..models import EventLink
from ..models.sync import EXTENDED_PROPERTY_ID
from ..times import parse_utc

GRAPH_DATETIME = "%Y-%m-%dT%H:%M:%S.0000000"


def _graph_time(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime(GRAPH_DATETIME), "timeZone": "UTC"}


def _all_day(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    first: date = start.date()
    last: date = end.date() if end.time() == datetime.min.time() else end.date() + timedelta(1)
    last = max(last, first + timedelta(days=1))
    return (datetime.combine(first, datetime.min.time(), UTC),
            datetime.combine(last, datetime.min.time(), UTC))


def _importance(value: Any) -> str:
    try:
        number = int(value or 0)
    except (TypeError, ValueError):
        number = 0
    return "low" if number < 0 else "high" if number > 0 else "normal"


def subject_of(data: dict[str, Any]) -> str:
    subject = str(data.get("subject") or "").strip()
    if subject:
        return subject[:255]
    fallback = " ".join(str(data.get(key) or "") for key in ("job_no", "task_no")).strip()
    return (fallback or str(data.get("appointment_no") or "") or "Appointment")[:255]


def schedulable(data: dict[str, Any]) -> bool:
    """True when the appointment has both start and end (an event needs them)."""
    return bool(data.get("start")) and bool(data.get("end"))


def render_event(appointment: Appointment) -> dict[str, Any]:
    """The Graph event body for an appointment's current state (create and update alike).

    Call only for a schedulable appointment (`schedulable(appointment.data)`).
    """
    data = appointment.data
    start, end = parse_utc(data["start"]), parse_utc(data["end"])
    assert start is not None and end is not None
    all_day = bool(data.get("is_all_day"))
    if all_day:
        start, end = _all_day(start, end)
    category = str(data.get("category") or "").strip()
    return {
        "subject": subject_of(data),
        "body": {"contentType": "text", "content": str(data.get("body") or "")},
        "start": _graph_time(start),
        "end": _graph_time(end),
        "isAllDay": all_day,
        "showAs": "busy",
        "importance": _importance(data.get("importance")),
        "categories": [category[:255]] if category else [],
    }


def content_hash(event: dict[str, Any]) -> str:
    """A stable hash of an event body: equal hashes mean nothing to write."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def create_body(link: EventLink, event: dict[str, Any]) -> dict[str, Any]:
    """The body of the POST that creates the event: the event, the deterministic transactionId
    (Graph drops a repeated create, so a retried create never makes a second event) and the
    extended property that marks the event as DimeConnect's."""
    return {
        **event,
        "transactionId": link.transaction_id,
        "singleValueExtendedProperties": [
            {"id": EXTENDED_PROPERTY_ID, "value": str(link.appointment.guid)}
        ],
    }
