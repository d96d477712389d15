"""Dime.Scheduler inbound compatibility: its webhook connector's PascalCase body -> one event.

The body is the appointment Dime.Scheduler's own webhook connector posts (the shape
connectors.backoffices.payloads.dimescheduler_appointment sends): AppointmentGuid, AppointmentId,
AppointmentNo, Subject, Body, StartDate, EndDate, IsAllDay, Category, TimeMarker, Importance,
Locked, PlanningUOM, PlanningQuantity, BackofficeId, Task{TaskNo, Job{SourceApp, SourceType,
JobNo}}, Assignments[{Resource{ResourceNo, Email}}], FieldValues. It is mapped onto the event
API's appointment and validated by the same serializer; errors name the PascalCase fields.

- action: the URL (`…/appointments/<action>/` or `?action=`), else the body's DatabaseAction
  (I/U/D).
- event_id: the `webhook-id` header (Standard Webhooks) when sent. Otherwise derived from a
  hash of (action, body): a resent identical body is a duplicate, but the same body sent again
  after another change of that appointment (A -> B -> A) is a new event (see derived_event_id).
- occurred_at: the `webhook-timestamp` header (unix seconds) when sent, else now.
- naive StartDate/EndDate are read as UTC.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from connectors.compat import CrudType
from connectors.intake import IncomingEvent
from connectors.models import ApiClient, AppointmentEvent

from .errors import flatten_errors
from .fields import NAIVE_AS_UTC
from .serializers import AppointmentSerializer

SOURCE = "dimescheduler"
DATABASE_ACTIONS = {"I": "create", "U": "update", "D": "delete"}
MAX_TIMESTAMP = 2**33  # year 2242: anything later is not a real webhook-timestamp

# Top-level PascalCase key -> the event API's key.
TOP_LEVEL: dict[str, str] = {
    "AppointmentGuid": "guid",
    "AppointmentId": "appointment_id",
    "AppointmentNo": "appointment_no",
    "Subject": "subject",
    "Body": "body",
    "StartDate": "start",
    "EndDate": "end",
    "IsAllDay": "is_all_day",
    "Category": "category",
    "TimeMarker": "time_marker",
    "Importance": "importance",
    "Locked": "locked",
    "PlanningUOM": "planning_uom",
    "PlanningQuantity": "planning_qty",
    "BackofficeId": "backoffice_id",
    "FieldValues": "field_values",
}
NESTED: dict[str, str] = {
    "task_no": "Task.TaskNo",
    "source_app": "Task.Job.SourceApp",
    "source_type": "Task.Job.SourceType",
    "job_no": "Task.Job.JobNo",
    "resources": "Assignments",
}
PASCAL: dict[str, str] = {**{v: k for k, v in TOP_LEVEL.items()}, **NESTED}
RESOURCE_PASCAL = {"resource_no": "ResourceNo", "email": "Email"}


def _object(value: Any, path: str, errors: dict[str, list[str]]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors[path] = ["Expected an object."]
        return {}
    return value


def _resources(value: Any, errors: dict[str, list[str]]) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        errors["Assignments"] = ["Expected a list of assignments."]
        return None
    resources: list[Any] = []
    for index, item in enumerate(value):
        resource = _object(
            _object(item, f"Assignments.{index}", errors).get("Resource"),
            f"Assignments.{index}.Resource",
            errors,
        )
        resources.append(
            {"resource_no": resource.get("ResourceNo"), "email": resource.get("Email")}
        )
    return resources


def to_canonical(body: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The event API's appointment keys for a Dime.Scheduler body, and structural errors."""
    errors: dict[str, list[str]] = {}
    task = _object(body.get("Task"), "Task", errors)
    job = _object(task.get("Job"), "Task.Job", errors)
    appointment = {key: body[pascal] for pascal, key in TOP_LEVEL.items() if pascal in body}
    nested = {
        "task_no": task.get("TaskNo"),
        "source_app": job.get("SourceApp"),
        "source_type": job.get("SourceType"),
        "job_no": job.get("JobNo"),
        "resources": _resources(body.get("Assignments"), errors),
    }
    appointment.update({key: value for key, value in nested.items() if value is not None})
    return appointment, errors


def pascal_path(path: str) -> str:
    """An error path of the event API's appointment in the body's PascalCase names."""
    head, _, rest = path.partition(".")
    if head == "resources" and rest:
        index, _, field = rest.partition(".")
        name = RESOURCE_PASCAL.get(field, field)
        return f"Assignments.{index}.Resource.{name}" if field else f"Assignments.{index}"
    return PASCAL.get(head, head) + (f".{rest}" if rest else "")


def validate_appointment(body: Any, action: str) -> dict[str, Any]:
    """The normalised appointment of a Dime.Scheduler body; raises ValidationError (400).

    As in the event API, StartDate and EndDate are required unless the action is delete.
    """
    if not isinstance(body, Mapping):
        raise ValidationError("Send one Dime.Scheduler appointment as a JSON object.")
    data, errors = to_canonical(body)
    serializer = AppointmentSerializer(data=data, context={NAIVE_AS_UTC: True})
    if not serializer.is_valid():
        structural = list(errors)
        for path, messages in flatten_errors(serializer.errors).items():
            name = pascal_path(path)
            # Inside a part already refused as "not an object" the details add nothing.
            if not any(name == s or name.startswith(s + ".") for s in structural):
                errors.setdefault(name, []).extend(messages)
    else:
        for key in ("start", "end"):
            if action != CrudType.DELETE and serializer.validated_data[key] is None:
                errors.setdefault(pascal_path(key), []).append(f"Required for {action}.")
    if errors:
        raise ValidationError(errors)
    return dict(serializer.validated_data)


def resolve_action(path_action: str | None, query_action: str | None, body: Any) -> str:
    """create | update | delete, from the path, else `?action=`, else the body's DatabaseAction.

    Raises ValidationError naming `action` when none is given or the value is unknown.
    """
    given = path_action or query_action
    if given is not None:
        action = given.strip().lower()
        if action in CrudType.values:
            return action
        raise ValidationError({"action": [f"Use create, update or delete (got '{given[:50]}')."]})
    code = body.get("DatabaseAction") if isinstance(body, Mapping) else None
    if isinstance(code, str) and code.strip().upper() in DATABASE_ACTIONS:
        return DATABASE_ACTIONS[code.strip().upper()]
    raise ValidationError(
        {"action": ["Give the action: …/appointments/<create|update|delete>/ or ?action=."]}
    )


class _WebhookHeaders(serializers.Serializer[dict[str, Any]]):
    webhook_id = serializers.CharField(max_length=200, required=False)
    webhook_timestamp = serializers.RegexField(r"^\d{1,12}$", required=False)


def webhook_headers(meta: Mapping[str, Any]) -> tuple[str | None, datetime]:
    """The `webhook-id` (or None) and the occurred_at the `webhook-timestamp` header gives (or
    now). Raises ValidationError naming the header."""
    raw = {  # a header sent blank counts as not sent
        name: str(meta[f"HTTP_{name.upper()}"]).strip()
        for name in ("webhook_id", "webhook_timestamp")
        if str(meta.get(f"HTTP_{name.upper()}", "")).strip()
    }
    headers = _WebhookHeaders(data=raw)
    if not headers.is_valid():
        raise ValidationError(
            {name.replace("_", "-"): errors for name, errors in headers.errors.items()}
        )
    stamp = headers.validated_data.get("webhook_timestamp")
    if stamp is not None and int(stamp) > MAX_TIMESTAMP:
        raise ValidationError({"webhook-timestamp": ["Give unix seconds, e.g. 1795251600."]})
    occurred_at = datetime.fromtimestamp(int(stamp), UTC) if stamp is not None else timezone.now()
    return headers.validated_data.get("webhook_id"), occurred_at


def body_hash(action: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{action}\n{canonical}".encode()).hexdigest()[:40]


def derived_event_id(client: ApiClient, guid: str, action: str, body: Any) -> str:
    """An event id for a body without `webhook-id`: "ds-<hash of action and body>".

    When this client's newest event of the appointment carries the same hash, that event's id is
    returned (a resend: answered duplicate). When the hash was seen before but other events came
    since (A -> B -> A), a counter is appended, so the change back to A is not lost.
    """
    base = f"ds-{body_hash(action, body)}"
    events = AppointmentEvent.objects.filter(client=client, appointment__guid=guid)
    newest = events.order_by("-received_at", "-id").values_list("event_id", flat=True).first()
    if newest is not None and newest.split("~")[0] == base:
        return newest
    seen = events.filter(event_id__startswith=base).count()
    return f"{base}~{seen}" if seen else base


def dimescheduler_event(
    *, client: ApiClient, action: str, body: Any, meta: Mapping[str, Any]
) -> IncomingEvent:
    """The event a Dime.Scheduler post describes; raises ValidationError (400)."""
    appointment = validate_appointment(body, action)
    webhook_id, occurred_at = webhook_headers(meta)
    event_id = webhook_id or derived_event_id(client, appointment["guid"], action, body)
    return IncomingEvent(
        event_id=event_id,
        action=action,
        occurred_at=occurred_at,
        appointment=appointment,
        source=SOURCE,
    )
