"""Helpers for the outbound (planner → Outlook) tests: a configured Exchange, resources with
mailboxes at the fake Graph, and appointment events accepted through intake."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from connectors.intake import IncomingEvent, events_accept
from exchange_sync.models import ExchangeSettings, Resource
from exchange_sync.outbound.push import PushSummary, push_all
from tests.fakes.token_server import CLIENT_ID, CLIENT_SECRET, TENANT

APP = "BCPROD"
# A fixed time: the push itself ignores the sync window (only sync_exchange selects by it).
BASE = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)


def configure_exchange(**changes: Any) -> ExchangeSettings:
    exchange = ExchangeSettings.load()
    exchange.enabled = True
    exchange.tenant_id, exchange.client_id, exchange.client_secret = (
        TENANT, CLIENT_ID, CLIENT_SECRET)
    for name, value in changes.items():
        setattr(exchange, name, value)
    exchange.save()
    return exchange


def resource(graph_state: Any, number: str, email: str, *, sync: bool = True,
             **fields: Any) -> Resource:
    graph_state.add_user(email)
    return Resource.objects.create(source_app=APP, resource_no=number, email=email,
                                   sync_enabled=sync, **fields)


def appointment(guid: str, *, resources: list[tuple[str, str]], start: datetime = BASE,
                hours: float = 2, **fields: Any) -> dict[str, Any]:
    return {
        "guid": guid, "source_app": APP, "source_type": "", "appointment_id": None,
        "appointment_no": "A-1", "job_no": "J-1", "task_no": "T-1",
        "resources": [{"resource_no": no, "email": email} for no, email in resources],
        "subject": fields.pop("subject", "Install boiler"),
        "body": fields.pop("body", "Bring the key"),
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": (start + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "is_all_day": False, "category": fields.pop("category", "Install"), "time_marker": "",
        "importance": 0, "locked": False, "planning_uom": "", "planning_qty": None,
        "backoffice_id": "", "field_values": {}, **fields,
    }


_clock = {"at": datetime(2026, 11, 1, 8, 0, tzinfo=UTC)}


def accept(action: str, data: dict[str, Any], *, occurred_at: datetime | None = None) -> None:
    """Accept one event through intake (as the API does), each later than the one before."""
    if occurred_at is None:
        _clock["at"] += timedelta(seconds=1)
        occurred_at = _clock["at"]
    events_accept(client=None, events=[IncomingEvent(
        event_id=str(uuid.uuid4()), action=action, occurred_at=occurred_at, appointment=data)])


def push() -> PushSummary:
    return push_all(budget_s=30)


def at(hours: float) -> dict[str, str]:
    """A Graph dateTimeTimeZone `hours` from now, on the hour, in UTC (Outlook-side events)."""
    moment = (timezone.now() + timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    return {"dateTime": moment.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def new_guid() -> str:
    return str(uuid.uuid4())
