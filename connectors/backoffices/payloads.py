"""Field mapping of every outbound format, in one module: a customer's variant is one edit here.

Input is an AppointmentChange whose `appointment` has the event API's snake_case keys
(DESIGN.md, API). Formats:
- canonical webhook body: {"type": "appointment.created", "timestamp", "data": appointment}
- Dime.Scheduler webhook body: the PascalCase appointment Dime.Scheduler's own webhook posts
- Business Central REST: one camelCase staging record for the dimeScheduler API page
- Business Central / NAV SOAP: the same record with the `Appointment` page's element names
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .base import AppointmentChange

WEBHOOK_EVENT_TYPES = {
    "create": "appointment.created",
    "update": "appointment.updated",
    "delete": "appointment.deleted",
}
DATABASE_ACTIONS = {"create": "I", "update": "U", "delete": "D"}

# Business Central staging record: camelCase field -> appointment key.
BC_REST_FIELDS: dict[str, str] = {
    "sourceApp": "source_app",
    "sourceType": "source_type",
    "jobNo": "job_no",
    "taskNo": "task_no",
    "appointmentId": "appointment_id",
    "appointmentGuid": "guid",
    "subject": "subject",
    "body": "body",
    "start": "start",
    "end": "end",
    "isAllDayEvent": "is_all_day",
    "category": "category",
    "timeMarker": "time_marker",
    "importance": "importance",
    "planningQuantity": "planning_qty",
    "planningUOM": "planning_uom",
    "backofficeId": "backoffice_id",
}

# The `Appointment` page web service: element name -> camelCase staging field.
SOAP_ELEMENTS: dict[str, str] = {
    "Source_App": "sourceApp",
    "Source_Type": "sourceType",
    "Database_Action": "databaseAction",
    "Job_No": "jobNo",
    "Task_No": "taskNo",
    "Appointment_Id": "appointmentId",
    "Appointment_Guid": "appointmentGuid",
    "Subject": "subject",
    "Body": "body",
    "Start": "start",
    "End": "end",
    "Is_All_Day_Event": "isAllDayEvent",
    "Category": "category",
    "Time_Marker": "timeMarker",
    "Importance": "importance",
    "Planning_Quantity": "planningQuantity",
    "Planning_UOM": "planningUOM",
    "Backoffice_Id": "backofficeId",
}

# The page's subpage part holding the resource lines, as NAV pages expose lines: a part element
# of a `…_List` type whose items are the line elements.
SOAP_LINES_PART = "Appointment_Resources"
SOAP_LINE_ELEMENT = "Appointment_Resource_Line"
SOAP_LINE_FIELDS: dict[str, str] = {"Resource_No": "resourceNo"}
# Every element of the page record soap_record may fill (the SOAP client checks the page has them).
SOAP_RECORD_ELEMENTS: tuple[str, ...] = (*SOAP_ELEMENTS, SOAP_LINES_PART)


def iso_utc(value: datetime) -> str:
    """An aware datetime as ISO 8601 in UTC with a Z ("2026-11-21T09:00:00Z")."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook_body(change: AppointmentChange, *, style: str) -> dict[str, Any]:
    """The JSON body a webhook connector posts, in its payload style."""
    data = dimescheduler_appointment(change) if style == "dimescheduler" else dict(
        change.appointment
    )
    return {
        "type": WEBHOOK_EVENT_TYPES[change.action],
        "timestamp": iso_utc(change.occurred_at),
        "data": data,
    }


def dimescheduler_appointment(change: AppointmentChange) -> dict[str, Any]:
    """The PascalCase appointment Dime.Scheduler's own webhook connector posts."""
    a = change.appointment
    return {
        "AppointmentId": a.get("appointment_id"),
        "AppointmentGuid": a.get("guid"),
        "AppointmentNo": a.get("appointment_no"),
        "Subject": a.get("subject", ""),
        "Body": a.get("body", ""),
        "StartDate": a.get("start"),
        "EndDate": a.get("end"),
        "IsAllDay": bool(a.get("is_all_day", False)),
        "Category": a.get("category", ""),
        "TimeMarker": a.get("time_marker", ""),
        "Importance": a.get("importance", 0),
        "Locked": bool(a.get("locked", False)),
        "PlanningUOM": a.get("planning_uom", ""),
        "PlanningQuantity": a.get("planning_qty"),
        "BackofficeId": a.get("backoffice_id", ""),
        "DatabaseAction": DATABASE_ACTIONS[change.action],
        "Task": {
            "TaskNo": a.get("task_no", ""),
            "Job": {
                "SourceApp": a.get("source_app", ""),
                "SourceType": a.get("source_type", ""),
                "JobNo": a.get("job_no", ""),
            },
        },
        "Assignments": [
            {"Resource": {"ResourceNo": r.get("resource_no", ""), "Email": r.get("email", "")}}
            for r in _resources(a)
        ],
        "FieldValues": dict(a.get("field_values") or {}),
    }


def _resources(appointment: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in appointment.get("resources") or [] if isinstance(r, Mapping)]


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def bc_staging_record(change: AppointmentChange) -> dict[str, Any]:
    """The camelCase staging record for the Business Central dimeScheduler API page."""
    a = change.appointment
    record: dict[str, Any] = {"databaseAction": DATABASE_ACTIONS[change.action]}
    for field, key in BC_REST_FIELDS.items():
        value = a.get(key)
        if key == "planning_qty":
            number = _decimal(value)
            value = float(number) if number is not None else 0
        elif key in ("is_all_day",):
            value = bool(value)
        elif key in ("importance", "appointment_id"):
            value = int(value or 0)
        elif value is None:
            value = ""
        record[field] = value
    record["appointmentResources"] = [
        {"resourceNo": r.get("resource_no", "")} for r in _resources(a)
    ]
    return record


def soap_record(change: AppointmentChange) -> dict[str, Any]:
    """The `Appointment` page record for zeep: page element names, plus the resource lines.

    Without resources the part is left out: the list type needs at least one line element.
    """
    staging = bc_staging_record(change)
    record = {element: staging[field] for element, field in SOAP_ELEMENTS.items()}
    record["Planning_Quantity"] = _decimal(staging["planningQuantity"]) or Decimal(0)
    for element in ("Start", "End"):  # an empty xsd:dateTime is invalid; leave it out instead
        record[element] = record[element] or None
    lines = [
        {element: line[field] for element, field in SOAP_LINE_FIELDS.items()}
        for line in staging["appointmentResources"]
    ]
    if lines:
        record[SOAP_LINES_PART] = {SOAP_LINE_ELEMENT: lines}
    return record
