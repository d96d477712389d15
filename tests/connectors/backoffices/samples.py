"""Sample appointment changes (as the event API carries them, DESIGN.md, API) and the auth
settings that work against the token fake."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from connectors.backoffices.base import AppointmentChange
from tests.fakes import token_server

GUID = "3f2b8c1e-9d4a-4e7b-a1c2-5d6e7f8a9b0c"


def appointment(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "guid": GUID,
        "appointment_id": 123,
        "appointment_no": "APP-0123",
        "source_app": "BCPROD",
        "source_type": "SERVICE",
        "job_no": "J-1001",
        "task_no": "T-10",
        "resources": [
            {"resource_no": "R-ANN", "email": "ann@example.com"},
            {"resource_no": "R-BOB", "email": "bob@example.com"},
        ],
        "subject": "Boiler service — Müller",
        "body": "Bring the spare valve.",
        "start": "2026-11-23T08:00:00Z",
        "end": "2026-11-23T10:30:00Z",
        "is_all_day": False,
        "category": "SERVICE",
        "time_marker": "URGENT",
        "importance": 2,
        "locked": False,
        "planning_uom": "HOUR",
        "planning_qty": "2.5",
        "backoffice_id": "SO-000042",
        "field_values": {"Priority": "High"},
    }
    values.update(overrides)
    return values


def change(action: str = "create", **overrides: Any) -> AppointmentChange:
    return AppointmentChange(
        action=action,
        dispatch_id=f"dsp_{uuid.uuid4().hex}",
        occurred_at=datetime(2026, 11, 21, 9, 0, tzinfo=UTC),
        appointment=appointment(**overrides),
    )


# How the token fake saw each auth type send the client secret (msal posts it in the form).
CLIENT_AUTH = {"entra_id": "post", "oauth2_basic": "basic", "oauth2_post": "post"}


def token_fields(server: Any, auth_type: str) -> dict[str, str]:
    """Connector fields for a token auth type that the started token fake `server` accepts
    (Entra ID also needs settings.ENTRA_AUTHORITY_HOST = server.url: the `entra` fixture)."""
    fields = {"client_id": token_server.CLIENT_ID, "client_secret": token_server.CLIENT_SECRET}
    if auth_type == "entra_id":
        return {**fields, "tenant_id": token_server.TENANT}
    return {**fields, "token_url": f"{server.url}/oauth2/token"}
