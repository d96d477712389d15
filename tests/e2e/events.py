"""Appointment events as a back office posts them to /api/v1/appointments/events/
(DESIGN.md, API)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def new_guid() -> str:
    return str(uuid.uuid4())


def appointment(guid: str, source_app: str, **overrides: Any) -> dict[str, Any]:
    """A complete appointment; `overrides` replace any of its keys."""
    values: dict[str, Any] = {
        "guid": guid,
        "appointment_id": uuid.UUID(guid).int % 1_000_000,
        "appointment_no": f"APP-{guid[:8]}",
        "source_app": source_app,
        "source_type": "SERVICE",
        "job_no": "J-1001",
        "task_no": "T-10",
        "resources": [{"resource_no": "R-ANN", "email": "ann@example.com"}],
        "subject": "Boiler service",
        "body": "Bring the spare valve.",
        "start": "2026-11-23T08:00:00Z",
        "end": "2026-11-23T10:30:00Z",
        "is_all_day": False,
        "category": "SERVICE",
        "time_marker": "",
        "importance": 1,
        "locked": False,
        "planning_uom": "HOUR",
        "planning_qty": "2.5",
        "backoffice_id": "SO-42",
        "field_values": {},
    }
    values.update(overrides)
    return values


def event(action: str, guid: str, source_app: str, *, step: int = 0,
          event_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """One event. `step` orders the events of one appointment: its occurred_at is T0 + step
    minutes (a later step is never stale), and the default event_id includes it."""
    return {
        "event_id": event_id or f"{action}-{guid}-{step}",
        "action": action,
        "occurred_at": (T0 + timedelta(minutes=step)).isoformat().replace("+00:00", "Z"),
        "appointment": appointment(guid, source_app, **overrides),
    }
