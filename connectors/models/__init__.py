"""Connectors app models: connectors and API clients; appointments, their events, and the
dispatches (outbox rows) and attempts that write them back."""

from .connector import SECRET_FIELDS, ApiClient, Connector, all_crud_types
from .pipeline import (
    OPEN_STATUSES,
    Appointment,
    AppointmentEvent,
    Attempt,
    AttemptOutcome,
    Dispatch,
    DispatchStatus,
)

__all__ = [
    "SECRET_FIELDS",
    "ApiClient",
    "Appointment",
    "AppointmentEvent",
    "Attempt",
    "AttemptOutcome",
    "OPEN_STATUSES",
    "Connector",
    "Dispatch",
    "DispatchStatus",
    "all_crud_types",
]
