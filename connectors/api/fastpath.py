"""The event API's fast path: what EventSerializer returns for a plainly well-formed event,
without DRF's per-field machinery.

EventSerializer runs a dozen field objects, their validators and error collection for every
event: ~0.2 ms each, a quarter of a 500-event post once its inserts went to COPY. Most events
are plainly well formed — strings where text is expected, JSON integers and booleans, times
with a zone — and for those `validated_event` builds the same validated data directly, reusing
the serializer's own field classes for GUIDs, times, decimals and free-form JSON and its
`normalise_appointment` for the stored shape. Anything else, every invalid event included,
answers NOT_PLAIN and the caller validates with EventSerializer, whose messages are the API's:
this path never writes an error message of its own, so the two cannot disagree on one.
`tests/api/test_fastpath.py` checks on generated input that whatever this path accepts, the
serializer accepts with the same result.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator
from rest_framework.exceptions import ValidationError

from connectors.compat import CrudType

from .fields import (
    _SURROGATE,
    AwareDateTimeField,
    DecimalStringField,
    JSONObjectField,
    StrictUUIDField,
)
from .serializers import INT32, MAX_BIGINT, MAX_RESOURCES, normalise_appointment


class _NotPlain:
    def __repr__(self) -> str:
        return "NOT_PLAIN"


NOT_PLAIN: Final = _NotPlain()  # "ask EventSerializer"
_ABSENT: Final = object()

_ACTIONS = frozenset(CrudType.values)
_GUID = StrictUUIDField()
_DATETIME = AwareDateTimeField()
_DECIMAL = DecimalStringField()
_JSON_OBJECT = JSONObjectField()
_EMAIL = EmailValidator()

# Optional text fields of the appointment: key -> (max length, whitespace trimmed).
_TEXT: dict[str, tuple[int | None, bool]] = {
    "appointment_no": (50, True), "source_type": (10, True), "job_no": (50, True),
    "task_no": (50, True), "subject": (None, False), "body": (None, False),
    "category": (None, True), "time_marker": (None, True), "planning_uom": (20, True),
    "backoffice_id": (250, True),
}
_INTEGERS: dict[str, tuple[int, int]] = {
    "appointment_id": (0, MAX_BIGINT), "importance": (-INT32, INT32 - 1),
}
_BOOLEANS = ("is_all_day", "locked")
# Fields whose own to_internal_value decides (the serializer's field classes, reused).
_OWN_FIELDS = {"start": _DATETIME, "end": _DATETIME, "planning_qty": _DECIMAL,
               "field_values": _JSON_OBJECT}


def _text(data: Any, max_length: int | None, *, trim: bool = True, blank: bool = True) -> Any:
    """A DRF CharField's value of a plain string, else NOT_PLAIN (None is the caller's)."""
    if type(data) is not str:
        return NOT_PLAIN
    value = data.strip() if trim else data
    if not value:
        return "" if blank else NOT_PLAIN
    if max_length is not None and len(value) > max_length:
        return NOT_PLAIN
    if "\x00" in value or _SURROGATE.search(value):
        return NOT_PLAIN
    return value


@functools.lru_cache(maxsize=4096)
def _valid_email(value: str) -> bool:
    """Django's EmailValidator, remembered: a bulk post names the same few mailboxes again and
    again, and each check costs as much as the rest of a resource's validation."""
    try:
        _EMAIL(value)
    except DjangoValidationError:
        return False
    return True


def _own(field: Any, data: Any) -> Any:
    try:
        return field.to_internal_value(data)
    except ValidationError:
        return NOT_PLAIN


def _resources(data: Any) -> Any:
    if type(data) is not list or len(data) > MAX_RESOURCES:
        return NOT_PLAIN
    out: list[dict[str, Any]] = []
    for item in data:
        if type(item) is not dict:
            return NOT_PLAIN
        number = _text(item.get("resource_no"), 50, blank=False)
        if number is NOT_PLAIN:
            return NOT_PLAIN
        resource = {"resource_no": number}
        email = item.get("email", _ABSENT)
        if email is not _ABSENT and email is not None:
            email = _text(email, 254)
            if email is NOT_PLAIN:
                return NOT_PLAIN
            if email and not _valid_email(email):
                return NOT_PLAIN
        if email is not _ABSENT:
            resource["email"] = email
        out.append(resource)
    return out


def _value(key: str, data: Any) -> Any:
    """The validated value of one optional appointment key (None allowed for every one)."""
    if data is None:
        return None
    if key in _TEXT:
        max_length, trim = _TEXT[key]
        return _text(data, max_length, trim=trim)
    if key in _INTEGERS:
        low, high = _INTEGERS[key]
        return data if type(data) is int and low <= data <= high else NOT_PLAIN
    if key in _BOOLEANS:
        return data if type(data) is bool else NOT_PLAIN
    if key == "resources":
        return _resources(data)
    return _own(_OWN_FIELDS[key], data)


_OPTIONAL = (*_TEXT, *_INTEGERS, *_BOOLEANS, "resources", *_OWN_FIELDS)


def _appointment(data: Any) -> Any:
    if type(data) is not dict:
        return NOT_PLAIN
    guid = data.get("guid")
    source_app = _text(data.get("source_app"), 30, blank=False)
    if type(guid) is not str or source_app is NOT_PLAIN:
        return NOT_PLAIN
    attrs: dict[str, Any] = {"guid": _own(_GUID, guid), "source_app": source_app}
    for key in _OPTIONAL:
        if key in data:
            attrs[key] = _value(key, data[key])
    if any(value is NOT_PLAIN for value in attrs.values()):
        return NOT_PLAIN
    start, end = attrs.get("start"), attrs.get("end")
    if start is not None and end is not None and end < start:
        return NOT_PLAIN
    return normalise_appointment(attrs)


def validated_event(data: Any) -> Any:
    """EventSerializer(data=data).validated_data for a plainly well-formed event, else
    NOT_PLAIN (validate with the serializer then)."""
    if type(data) is not dict:
        return NOT_PLAIN
    event_id = _text(data.get("event_id"), 200, blank=False)
    action = data.get("action")
    occurred_at = data.get("occurred_at")
    if event_id is NOT_PLAIN or type(action) is not str or action not in _ACTIONS:
        return NOT_PLAIN
    occurred = NOT_PLAIN if occurred_at is None else _own(_DATETIME, occurred_at)
    appointment = _appointment(data.get("appointment"))
    if occurred is NOT_PLAIN or appointment is NOT_PLAIN:
        return NOT_PLAIN
    if action != CrudType.DELETE and (appointment["start"] is None or appointment["end"] is None):
        return NOT_PLAIN
    return {"event_id": event_id, "action": action, "occurred_at": occurred,
            "appointment": appointment}


def validated_events(items: list[Any]) -> list[dict[str, Any]] | None:
    """`validated_event` of each item, or None as soon as one is not plainly well formed."""
    out = []
    for item in items:
        validated = validated_event(item)
        if validated is NOT_PLAIN:
            return None
        out.append(validated)
    return out
