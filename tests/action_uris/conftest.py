"""Fixtures of the action URI tests: templates saved through validation, appointments, and the
API tests' key and throttle cache."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from connectors.models import ActionUri, Appointment
from tests.api.conftest import _throttle_cache, api_key  # noqa: F401 (fixtures used here)
from tests.connectors.pipeline_factories import AppointmentFactory

GUID = "6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b"


def action_uri(**values: Any) -> ActionUri:
    """An action URI saved as the admin saves one: validated (full_clean) first."""
    fields: dict[str, Any] = {
        "source_app": "BCPROD", "url_type": "appointment",
        "template": "https://bc.example.com/open?job=#JOBNO#", "description": "Open job",
    }
    fields.update(values)
    row = ActionUri(**fields)
    row.full_clean()
    row.save()
    return row


def stored_appointment(**values: Any) -> Appointment:
    """An appointment whose `data` agrees with its columns, as the intake stores it."""
    data: dict[str, Any] = {
        "start": "2026-11-21T09:00:00Z", "end": "2026-11-21T11:00:00Z",
        "resources": [{"resource_no": "R1", "email": "ann@example.com"},
                      {"resource_no": "R2", "email": ""}],
    }
    data.update(values.pop("data", {}))
    appointment = AppointmentFactory(
        guid=values.pop("guid", GUID) or uuid.uuid4(),
        appointment_id=values.pop("appointment_id", 123),
        job_no=values.pop("job_no", "J-1"),
        **values,
    )
    appointment.data = {**appointment.data, **data, "job_no": appointment.job_no,
                        "appointment_id": appointment.appointment_id}
    appointment.save()
    return appointment


@pytest.fixture
def make_action_uri(db):
    return action_uri


@pytest.fixture
def make_appointment(db):
    return stored_appointment
