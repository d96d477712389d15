"""Small builders for the Exchange sync admin and rules tests: resources, rules, and stored
appointments assigned to resources (with their `AppointmentResource` index rows)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Permission, User
from django.utils import timezone

from connectors.models import Appointment, AppointmentResource
from exchange_sync.models import OutboundRule, Resource


def make_resource(resource_no: str = "R1", source_app: str = "BCPROD", **values: Any) -> Resource:
    fields: dict[str, Any] = {"name": f"Resource {resource_no}",
                              "email": f"{resource_no.lower()}@contoso.example"}
    fields.update(values)
    return Resource.objects.create(source_app=source_app, resource_no=resource_no, **fields)


def add_rule(resource: Resource, field: str, operator: str, value: str = "",
             position: int = 0) -> OutboundRule:
    return OutboundRule.objects.create(resource=resource, field=field, operator=operator,
                                       value=value, position=position)


def make_appointment(*resource_nos: str, source_app: str = "BCPROD", age_minutes: int = 0,
                     **data: Any) -> Appointment:
    """A stored appointment assigned to `resource_nos`; `age_minutes` backdates its state."""
    guid = uuid.uuid4()
    number = data.pop("appointment_no", f"A-{guid.hex[:6]}")
    payload: dict[str, Any] = {
        "guid": str(guid), "source_app": source_app, "source_type": "SERVICE",
        "appointment_no": number, "subject": "Boiler service", "category": "Install",
        "start": "2026-11-21T09:00:00Z", "end": "2026-11-21T11:00:00Z",
        "resources": [{"resource_no": no} for no in resource_nos],
    }
    payload.update(data)
    appointment = Appointment.objects.create(
        guid=guid, source_app=source_app, source_type="SERVICE", appointment_no=number,
        data=payload, state_at=timezone.now() - timedelta(minutes=age_minutes),
    )
    AppointmentResource.objects.bulk_create(
        [AppointmentResource(appointment=appointment, resource_no=no) for no in resource_nos]
    )
    return appointment


def staff_user(*permissions: str, username: str = "viewer") -> User:
    """A staff user (not superuser) with the given "app_label.codename" permissions."""
    user = User.objects.create_user(username, password="pw-not-used", is_staff=True)
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


VIEW_PERMISSIONS = (
    "exchange_sync.view_exchangesettings", "exchange_sync.view_resource",
    "exchange_sync.view_outboundrule", "exchange_sync.view_eventlink",
    "exchange_sync.view_pendingsync", "exchange_sync.view_synclogentry",
)
