"""Fixtures of the API tests: API clients, webhook connectors and an event builder."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.cache import caches

from connectors.models import Connector
from connectors.services import api_client_create, connector_save

EVENTS_URL = "/api/v1/appointments/events/"
GUID = "6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b"


@pytest.fixture(autouse=True)
def _throttle_cache(settings):
    """Each test counts its requests afresh, in process memory (never the CI Redis)."""
    settings.CACHES = {
        **settings.CACHES,
        "throttle": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                     "LOCATION": "api-tests"},
    }
    caches["throttle"].clear()
    yield
    caches["throttle"].clear()


@pytest.fixture
def api_key(db) -> str:
    """The key of an API client allowed to post for BCPROD."""
    _, key = api_client_create(name="Business Central", source_apps=["BCPROD"])
    return key


@pytest.fixture
def make_connector(db):
    def make(name: str, source_app: str = "BCPROD", **values: Any) -> Connector:
        connector = Connector(
            name=name, type="webhook", api_type="rest", auth_type="none",
            uri="http://127.0.0.1:9/hook", source_app=source_app, **values,
        )
        return connector_save(connector)

    return make


def appointment(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "guid": GUID,
        "appointment_id": 123,
        "appointment_no": "A-1",
        "source_app": "BCPROD",
        "source_type": "SERVICE",
        "job_no": "J-1",
        "task_no": "T-1",
        "resources": [{"resource_no": "R1", "email": "ann@example.com"}],
        "subject": "Boiler service",
        "body": "Bring the spare valve.",
        "start": "2026-11-21T09:00:00Z",
        "end": "2026-11-21T11:00:00Z",
        "is_all_day": False,
        "category": "BLUE",
        "time_marker": "",
        "importance": 1,
        "locked": False,
        "planning_uom": "HOUR",
        "planning_qty": "2.5",
        "backoffice_id": "BO-1",
        "field_values": {"Priority": "High"},
    }
    data.update(overrides)
    return data


def event(
    event_id: str = "evt-1",
    action: str = "create",
    occurred_at: str = "2026-11-20T08:00:00Z",
    **appointment_overrides: Any,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "action": action,
        "occurred_at": occurred_at,
        "appointment": appointment(**appointment_overrides),
    }


def post_json(client, url: str, body: Any, *, key: str | None = None, **headers: str):
    if key is not None:
        headers.setdefault("Authorization", f"Bearer {key}")
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       headers=headers)


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    """The response has the API's one error shape; returns its `error` object."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == status
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error
