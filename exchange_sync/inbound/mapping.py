"""An Outlook event as a planner appointment (the event API's JSON), with the privacy filters.

- The mailbox owner's own events are shared only when their show-as value and sensitivity are
  among the resource's shared ones (`shared_filters`). Private and confidential events that are
  shared arrive as **busy blocks**: the fixed subject "Busy", no body, no location, no category,
  no series details: only the time, all-day flag, show-as and sensitivity leave the mailbox.
- An appointment made from an event has a deterministic GUID (uuid5 of resource and event id),
  so every round maps one event to the same appointment.
- Times: Graph answers in UTC (every call carries `Prefer: outlook.timezone="UTC"`); an IANA
  zone name is converted too (https://learn.microsoft.com/graph/api/resources/datetimetimezone).
"""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..models import ExchangeSettings, Resource, Sensitivity
from ..resources import shared_filters
from ..times import parse_utc, utc_text

# Namespace of the GUIDs of appointments made from Outlook events (never change it: the GUIDs
# of existing appointments derive from it).
OUTLOOK_APPOINTMENT_NAMESPACE = uuid.UUID("5b0e2d8c-7a41-4f6e-a3d9-1c8e4b7f2a65")
BUSY_SUBJECT = "Busy"
PRIVATE_SENSITIVITIES = frozenset({Sensitivity.PRIVATE.value, Sensitivity.CONFIDENTIAL.value})
IMPORTANCE = {"low": -1, "normal": 0, "high": 1}
_BLOCKS = re.compile(r"<(head|style|script)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BREAKS = re.compile(r"<br\s*/?>|</(p|div|li|tr|h[1-6])\s*>", re.IGNORECASE)
_TAGS = re.compile(r"<[^>]+>")


def appointment_guid(resource: Resource, event_id: str) -> uuid.UUID:
    """The GUID of the appointment made from this event in this resource's mailbox."""
    return uuid.uuid5(OUTLOOK_APPOINTMENT_NAMESPACE, f"{resource.pk}:{event_id}")


def event_time(value: Any) -> datetime:
    """A Graph dateTimeTimeZone ({"dateTime", "timeZone"}) as an aware UTC datetime.
    Raises ValueError for a missing value or an unknown zone."""
    if not isinstance(value, dict) or not value.get("dateTime"):
        raise ValueError("the event has no start or end")
    moment = parse_utc(str(value["dateTime"]).rstrip("Z"))
    assert moment is not None
    zone = str(value.get("timeZone") or "UTC")
    if zone.upper() in ("UTC", "ETC/UTC", "Z", "COORDINATED UNIVERSAL TIME"):
        return moment
    try:
        return moment.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r} (expected UTC)") from None


def text_body(body: Any) -> str:
    """The event body as plain text (HTML bodies stripped of markup, entities decoded)."""
    if not isinstance(body, dict):
        return ""
    content = str(body.get("content") or "")
    if str(body.get("contentType") or "text").lower() == "html":
        content = _TAGS.sub("", _BREAKS.sub("\n", _BLOCKS.sub("", content)))
        content = html.unescape(content).replace("\xa0", " ")
    lines = [" ".join(line.split()) for line in content.splitlines()]
    return "\n".join(lines).strip()


def times(event: dict[str, Any]) -> dict[str, Any]:
    """{"start", "end", "is_all_day"} of an event, as the event API carries them."""
    return {"start": utc_text(event_time(event.get("start"))),
            "end": utc_text(event_time(event.get("end"))),
            "is_all_day": bool(event.get("isAllDay"))}


@dataclass(frozen=True)
class Privacy:
    """What may leave the mailbox for one event: `shared` at all, and as a `busy` block."""

    shared: bool
    busy: bool
    reason: str = ""


def privacy(event: dict[str, Any], resource: Resource, exchange: ExchangeSettings) -> Privacy:
    """The resource's privacy filters applied to one of the owner's events."""
    show_as_shared, sensitivities_shared = shared_filters(resource, exchange)
    show_as = str(event.get("showAs") or "unknown")
    sensitivity = str(event.get("sensitivity") or "normal")
    if show_as not in show_as_shared:
        return Privacy(False, False, f"show-as “{show_as}” is not shared")
    if sensitivity not in sensitivities_shared:
        return Privacy(False, False, f"sensitivity “{sensitivity}” is not shared")
    return Privacy(True, sensitivity in PRIVATE_SENSITIVITIES)


def recurrence_summary(recurrence: Any) -> str:
    """A one-line description of a Graph patternedRecurrence ("" when there is none)."""
    if not isinstance(recurrence, dict):
        return ""
    pattern, span = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    kind = str(pattern.get("type") or "")
    if not kind:
        return ""
    interval = int(pattern.get("interval") or 1)
    text = f"{kind}, every {interval}"
    days = [str(day) for day in pattern.get("daysOfWeek") or []]
    if days:
        text += " on " + ", ".join(days)
    if span.get("startDate"):
        text += f", from {span['startDate']}"
    if span.get("type") == "endDate" and span.get("endDate"):
        text += f" until {span['endDate']}"
    elif span.get("type") == "numbered" and span.get("numberOfOccurrences"):
        text += f", {span['numberOfOccurrences']} times"
    return text


def appointment_data(event: dict[str, Any], resource: Resource, *, busy: bool,
                     series: str = "") -> dict[str, Any]:
    """The planner appointment (event API JSON) for one of the owner's shared events.

    `busy`: a busy block (nothing but the time, show-as and sensitivity). `series`: the
    recurrence summary of the event's series master, when known. Raises ValueError when the
    event has no usable start or end.
    """
    event_id = str(event["id"])
    fields: dict[str, Any] = {"outlook_show_as": str(event.get("showAs") or ""),
                              "outlook_sensitivity": str(event.get("sensitivity") or "normal")}
    data: dict[str, Any] = {
        "guid": str(appointment_guid(resource, event_id)),
        "appointment_id": None, "appointment_no": "", "source_app": resource.source_app,
        "source_type": "", "job_no": "", "task_no": "",
        "resources": [{"resource_no": resource.resource_no, "email": resource.email}],
        "subject": BUSY_SUBJECT, "body": "", **times(event), "category": "",
        "time_marker": "", "importance": 0, "locked": False, "planning_uom": "",
        "planning_qty": None, "backoffice_id": "", "field_values": fields,
    }
    if busy:
        return data
    categories = [str(c) for c in event.get("categories") or [] if c]
    data.update(
        subject=str(event.get("subject") or "")[:255], body=text_body(event.get("body")),
        category=categories[0][:100] if categories else "",
        importance=IMPORTANCE.get(str(event.get("importance") or "normal"), 0),
    )
    fields["outlook_event_type"] = str(event.get("type") or "singleInstance")
    location = (event.get("location") or {}).get("displayName") if isinstance(
        event.get("location"), dict) else ""
    if location:
        fields["outlook_location"] = str(location)[:255]
    if event.get("seriesMasterId"):
        fields["outlook_series_master_id"] = str(event["seriesMasterId"])
        if series:
            fields["outlook_series_recurrence"] = series
    return data
