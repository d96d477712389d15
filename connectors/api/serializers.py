"""Input and output of `POST /api/v1/appointments/events/` (DESIGN.md, API).

The validated appointment is the normalised JSON stored on the appointment and sent to the
back offices: every key of the API present (none other), datetimes as ISO 8601 UTC
strings with Z, `planning_qty` as a decimal string (or null), optional text as "" (never null).
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from connectors.backoffices.payloads import iso_utc
from connectors.compat import CrudType
from connectors.intake import IncomingEvent

from .fields import AwareDateTimeField, DecimalStringField, JSONObjectField, StrictUUIDField

MAX_EVENTS = 500
MAX_RESOURCES = 200
MAX_BIGINT = 2**63 - 1
INT32 = 2**31

# Canonical key -> the value an absent or null optional field stores.
DEFAULTS: dict[str, Any] = {
    "appointment_id": None,
    "appointment_no": "",
    "source_type": "",
    "job_no": "",
    "task_no": "",
    "resources": [],
    "subject": "",
    "body": "",
    "start": None,
    "end": None,
    "is_all_day": False,
    "category": "",
    "time_marker": "",
    "importance": 0,
    "locked": False,
    "planning_uom": "",
    "planning_qty": None,
    "backoffice_id": "",
    "field_values": {},
}
KEY_ORDER: tuple[str, ...] = (
    "guid", "appointment_id", "appointment_no", "source_app", "source_type", "job_no", "task_no",
    "resources", "subject", "body", "start", "end", "is_all_day", "category", "time_marker",
    "importance", "locked", "planning_uom", "planning_qty", "backoffice_id", "field_values",
)


def _text(max_length: int | None = None, *, trim: bool = True) -> serializers.CharField:
    """An optional text field: absent, null and "" all mean empty."""
    limit: dict[str, Any] = {} if max_length is None else {"max_length": max_length}
    return serializers.CharField(
        required=False, allow_blank=True, allow_null=True, trim_whitespace=trim, **limit
    )


class ResourceSerializer(serializers.Serializer[dict[str, Any]]):
    resource_no = serializers.CharField(max_length=50)
    email = serializers.EmailField(
        max_length=254, required=False, allow_blank=True, allow_null=True
    )


class AppointmentSerializer(serializers.Serializer[dict[str, Any]]):
    guid = StrictUUIDField(help_text="The appointment's identity.")
    appointment_id = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_BIGINT
    )
    appointment_no = _text(50)
    source_app = serializers.CharField(max_length=30)
    source_type = _text(10)
    job_no = _text(50)
    task_no = _text(50)
    # A ListField, not many=True: with many=True, allow_null would let null items through too.
    resources = serializers.ListField(
        child=ResourceSerializer(), required=False, allow_null=True, max_length=MAX_RESOURCES
    )
    subject = _text(trim=False)
    body = _text(trim=False)
    start = AwareDateTimeField(
        required=False, allow_null=True, help_text="Required for create and update."
    )
    end = AwareDateTimeField(
        required=False, allow_null=True, help_text="Required for create and update; ≥ start."
    )
    is_all_day = serializers.BooleanField(required=False, allow_null=True)
    category = _text()
    time_marker = _text()
    importance = serializers.IntegerField(
        required=False, allow_null=True, min_value=-INT32, max_value=INT32 - 1
    )
    locked = serializers.BooleanField(required=False, allow_null=True)
    planning_uom = _text(20)
    planning_qty = DecimalStringField(required=False, allow_null=True)
    backoffice_id = _text(250)
    field_values = JSONObjectField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None and end < start:
            raise serializers.ValidationError({"end": ["End must not be before start."]})
        return normalise_appointment(attrs)


def normalise_appointment(attrs: dict[str, Any]) -> dict[str, Any]:
    """The stored JSON of a validated appointment (see the module docstring)."""
    out: dict[str, Any] = {}
    for key in KEY_ORDER:
        value = attrs.get(key)
        if value is None:
            value = DEFAULTS.get(key)
        out[key] = value
    for key in ("start", "end"):
        if out[key] is not None:
            out[key] = iso_utc(out[key])
    out["resources"] = [
        {"resource_no": r["resource_no"], "email": r.get("email") or ""} for r in out["resources"]
    ]
    out["field_values"] = dict(out["field_values"])
    return out


class EventSerializer(serializers.Serializer[dict[str, Any]]):
    event_id = serializers.CharField(
        max_length=200, help_text="Unique per API client; a repeat is answered `duplicate`."
    )
    action = serializers.ChoiceField(choices=CrudType.choices)
    occurred_at = AwareDateTimeField(
        help_text="When the change happened; an event older than the stored state is `stale`."
    )
    appointment = AppointmentSerializer()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["action"] != CrudType.DELETE:
            missing = {
                key: [f"Required for {attrs['action']}."]
                for key in ("start", "end")
                if attrs["appointment"][key] is None
            }
            if missing:
                raise serializers.ValidationError({"appointment": missing})
        return attrs


def incoming_event(data: dict[str, Any], *, source: str = "api") -> IncomingEvent:
    return IncomingEvent(
        event_id=data["event_id"],
        action=data["action"],
        occurred_at=data["occurred_at"],
        appointment=data["appointment"],
        source=source,
    )


# --- Responses (for the OpenAPI schema; the views build plain dicts) --------------------------


class EventResultSerializer(serializers.Serializer[dict[str, Any]]):
    event_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["accepted", "duplicate"])
    dispatches = serializers.IntegerField(help_text="Dispatches (write-backs) this event made.")
    stale = serializers.BooleanField(
        help_text="Older than the stored state: recorded, nothing changed or sent."
    )
    appointment_guid = serializers.UUIDField()


class EventsAcceptedSerializer(serializers.Serializer[dict[str, Any]]):
    results = EventResultSerializer(many=True)
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()


class ErrorDetailSerializer(serializers.Serializer[dict[str, Any]]):
    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    # DRF takes declared fields off the class, so this does not shadow Serializer.fields.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Errors per input field, by dotted path (array items by index).",
    )


class ErrorSerializer(serializers.Serializer[dict[str, Any]]):
    error = ErrorDetailSerializer()
