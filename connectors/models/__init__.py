"""Connectors app models: connectors and API clients; appointments, their events, and the
dispatches (outbox rows) and attempts that write them back; action URIs."""

from .action_uri import ActionUri, RequestType, UrlType
from .connector import SECRET_FIELDS, ApiClient, Connector, all_crud_types
from .pipeline import (
    OPEN_STATUSES,
    RETRY_DISPATCH_PERMISSION,
    RETRYABLE_STATUSES,
    VIEW_DISPATCH_PERMISSION,
    Appointment,
    AppointmentEvent,
    AppointmentResource,
    Attempt,
    AttemptOutcome,
    Dispatch,
    DispatchStatus,
)

__all__ = [
    "SECRET_FIELDS",
    "ActionUri",
    "ApiClient",
    "Appointment",
    "AppointmentEvent",
    "AppointmentResource",
    "Attempt",
    "AttemptOutcome",
    "OPEN_STATUSES",
    "RETRY_DISPATCH_PERMISSION",
    "RETRYABLE_STATUSES",
    "VIEW_DISPATCH_PERMISSION",
    "RequestType",
    "Connector",
    "Dispatch",
    "DispatchStatus",
    "UrlType",
    "all_crud_types",
]
