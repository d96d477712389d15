"""Event JSON as Microsoft Graph shapes it, and recurring series expanded into occurrences.

Times: Graph's `{"dateTime": "2026-03-02T09:00:00.0000000", "timeZone": "UTC"}` (the fake
always answers in UTC, as `Prefer: outlook.timezone="UTC"` asks); timestamps like
`2026-03-02T08:15:03.1234567Z`. Recurrence: `pattern` daily|weekly (interval, daysOfWeek),
`range` endDate|numbered|noEnd (https://learn.microsoft.com/graph/api/resources/patternedrecurrence).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
SENSITIVITY = ("normal", "personal", "private", "confidential")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# What a client may set on POST/PATCH (everything else is Graph's own).
WRITABLE = (
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "showAs",
    "sensitivity",
    "importance",
    "categories",
    "location",
    "transactionId",
    "recurrence",
    "isReminderOn",
    "attendees",
    "isCancelled",
)
MAX_OCCURRENCES = 730  # a noEnd series is expanded this far at most
# Immutable ids share this prefix (mailbox + folder); the rest is per item.
ID_PREFIX = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A"


class BadEvent(ValueError):
    """A client sent an event Graph would refuse (400 with this message)."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def stamp(when: datetime) -> str:
    """`2026-03-02T08:15:03.1234567Z` (Graph's seven fractional digits)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def graph_time(when: datetime) -> dict[str, str]:
    return {
        "dateTime": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
        "timeZone": "UTC",
    }


def parse_instant(text: str) -> datetime:
    """An ISO 8601 timestamp (7 fractional digits, Z or an offset; naive = UTC)."""
    match = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(\.\d+)?(Z|[+-]\d{2}:\d{2})?", text.strip()
    )
    if not match:
        raise BadEvent(
            f"Cannot convert the literal '{text}' to the expected type 'Edm.DateTimeOffset'."
        )
    main, fraction, zone = match.groups()
    parsed = datetime.fromisoformat(main)
    if fraction:
        parsed = parsed.replace(microsecond=int((fraction[1:] + "000000")[:6]))
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        return (parsed - sign * timedelta(hours=hours, minutes=minutes)).replace(tzinfo=UTC)
    return parsed.replace(tzinfo=UTC)


def parse_graph_time(value: Any, field: str) -> datetime:
    """A dateTimeTimeZone; the zone is UTC or an IANA name (the fake knows no Windows names)."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise BadEvent(f"The '{field}' property needs a dateTime and a timeZone.")
    zone = value.get("timeZone") or "UTC"
    when = parse_instant(value["dateTime"]).replace(tzinfo=None)
    if zone.upper() in ("UTC", "Z", "ETC/UTC"):
        return when.replace(tzinfo=UTC)
    try:
        return when.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadEvent(
            f"A valid TimeZone value must be specified. The following TimeZone value "
            f"is not supported: '{zone}'."
        ) from None


def new_id() -> str:
    raw = uuid.uuid4().bytes + secrets.token_bytes(30)
    return ID_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def new_change_key() -> str:
    return "DwAAABYAAAA" + base64.b64encode(secrets.token_bytes(24)).decode().replace("/", "_")


def occurrence_id(master_id: str, day: date) -> str:
    """Stable per (series, date), so a delta round can tell an occurrence left the window."""
    digest = hashlib.sha256(f"{master_id}/{day.isoformat()}".encode()).digest()
    return ID_PREFIX + "BEQAA" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def body_preview(body: Any) -> str:
    content = body.get("content", "") if isinstance(body, dict) else ""
    text = re.sub(r"<[^>]+>", " ", str(content))
    return " ".join(text.split())[:255]


def check_fields(fields: dict[str, Any]) -> None:
    """Refuse values Graph refuses (enums); raises BadEvent."""
    if "showAs" in fields and fields["showAs"] not in SHOW_AS:
        raise BadEvent(f"Requested value '{fields['showAs']}' was not found.")
    if "sensitivity" in fields and fields["sensitivity"] not in SENSITIVITY:
        raise BadEvent(f"Requested value '{fields['sensitivity']}' was not found.")
    for key in ("start", "end"):
        if key in fields:
            parse_graph_time(fields[key], key)
    if fields.get("recurrence") is not None:
        recurrence_dates(fields["recurrence"], date(2000, 1, 1), limit=1)


def new_event(fields: dict[str, Any], organizer: dict[str, str]) -> dict[str, Any]:
    """A stored event (Graph's JSON, times normalised to UTC) from a client's fields."""
    if "start" not in fields or "end" not in fields:
        raise BadEvent("Your request can't be completed. An event needs a start and an end.")
    check_fields(fields)
    created = now_utc()
    event: dict[str, Any] = {
        "id": new_id(),
        "createdDateTime": stamp(created),
        "lastModifiedDateTime": "",
        "changeKey": "",
        "categories": [],
        "transactionId": None,
        "originalStartTimeZone": "UTC",
        "originalEndTimeZone": "UTC",
        "iCalUId": "040000008200E00074C5B7101A82E008" + secrets.token_hex(28).upper(),
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": True,
        "subject": "",
        "bodyPreview": "",
        "importance": "normal",
        "sensitivity": "normal",
        "isAllDay": False,
        "isCancelled": False,
        "isOrganizer": True,
        "showAs": "busy",
        "type": "singleInstance",
        "seriesMasterId": None,
        "recurrence": None,
        "body": {"contentType": "html", "content": ""},
        "location": {"displayName": ""},
        "attendees": [],
        "organizer": {"emailAddress": organizer},
    }
    apply_fields(event, fields)
    return event


def apply_fields(event: dict[str, Any], fields: dict[str, Any]) -> None:
    """Merge writable fields, normalise times to UTC, bump the change key and timestamp."""
    for key in WRITABLE:
        if key not in fields:
            continue
        value = copy.deepcopy(fields[key])
        if key in ("start", "end"):
            value = graph_time(parse_graph_time(value, key))
        event[key] = value
    event["bodyPreview"] = body_preview(event.get("body"))
    event["type"] = "seriesMaster" if event.get("recurrence") else "singleInstance"
    event["changeKey"] = new_change_key()
    event["@odata.etag"] = f'W/"{event["changeKey"]}"'
    event["lastModifiedDateTime"] = stamp(now_utc())


def span(event: dict[str, Any]) -> tuple[datetime, datetime]:
    return (parse_graph_time(event["start"], "start"), parse_graph_time(event["end"], "end"))


def recurrence_dates(
    recurrence: dict[str, Any],
    until: date,
    *,
    limit: int = MAX_OCCURRENCES,
    first: date | None = None,
) -> list[date]:
    """The dates a patterned recurrence produces up to `until` (inclusive)."""
    pattern, rng = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    kind, interval = pattern.get("type"), int(pattern.get("interval") or 1)
    if kind not in ("daily", "weekly") or interval < 1:
        raise BadEvent("The fake supports daily and weekly recurrence patterns with interval >= 1.")
    try:
        start = date.fromisoformat(rng.get("startDate") or (first or until).isoformat())
        end = date.fromisoformat(rng["endDate"]) if rng.get("type") == "endDate" else until
    except (KeyError, ValueError):
        raise BadEvent("The recurrence range needs a valid startDate (and endDate).") from None
    count = int(rng.get("numberOfOccurrences") or 0) if rng.get("type") == "numbered" else 0
    days = {
        WEEKDAYS.index(d.lower()) for d in pattern.get("daysOfWeek") or [] if d.lower() in WEEKDAYS
    } or {start.weekday()}
    dates: list[date] = []
    cursor = start
    while cursor <= min(end, until) and len(dates) < limit and (not count or len(dates) < count):
        if kind == "daily":
            dates.append(cursor)
            cursor += timedelta(days=interval)
            continue
        week_start = cursor - timedelta(days=cursor.weekday())
        for offset in range(7):
            day = week_start + timedelta(days=offset)
            if (
                start <= day <= min(end, until)
                and offset in days
                and (not count or len(dates) < count)
            ):
                dates.append(day)
        cursor = week_start + timedelta(weeks=interval)
    return dates


def occurrences(master: dict[str, Any], window_end: datetime) -> list[dict[str, Any]]:
    """The master's occurrences starting before `window_end` (type "occurrence")."""
    first, last = span(master)
    duration = last - first
    found = []
    for day in recurrence_dates(master["recurrence"], window_end.date(), first=first.date()):
        start = datetime.combine(day, first.timetz())
        occurrence = {k: copy.deepcopy(v) for k, v in master.items() if k != "recurrence"}
        occurrence.update(
            id=occurrence_id(master["id"], day),
            type="occurrence",
            seriesMasterId=master["id"],
            recurrence=None,
            start=graph_time(start),
            end=graph_time(start + duration),
        )
        found.append(occurrence)
    return found
