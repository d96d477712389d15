"""factory_boy factories for the write-back pipeline: connectors, appointments, events,
dispatches and attempts, written straight to the database (no intake, no delivery).

    dispatch = DispatchFactory(status="failed", connector__name="BC prod")
    AttemptFactory(dispatch=dispatch, outcome="failed", status_code=400)
    backdate(dispatch, days=100)   # created_at/updated_at are auto fields
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import factory
from django.db import models
from django.utils import timezone
from factory.django import DjangoModelFactory

from connectors import services
from connectors.models import Appointment, AppointmentEvent, Attempt, Connector, Dispatch


class ConnectorFactory(DjangoModelFactory):
    """A webhook connector without authentication, saved through services.connector_save."""

    class Meta:
        model = Connector

    name = factory.Sequence(lambda n: f"Hook {n}")
    type = "webhook"
    api_type = "rest"
    auth_type = "none"
    uri = "https://hooks.example.test/in"
    source_app = "BCPROD"

    @classmethod
    def _create(cls, model_class: type[Connector], *args: Any, **kwargs: Any) -> Connector:
        return services.connector_save(model_class(*args, **kwargs))


class AppointmentFactory(DjangoModelFactory):
    class Meta:
        model = Appointment

    guid = factory.LazyFunction(uuid.uuid4)
    source_app = "BCPROD"
    source_type = "SERVICE"
    appointment_no = factory.Sequence(lambda n: f"A-{1000 + n}")
    job_no = factory.Sequence(lambda n: f"J-{n}")
    task_no = "T-1"
    state_at = factory.LazyFunction(timezone.now)
    data = factory.LazyAttribute(
        lambda o: {
            "guid": str(o.guid), "source_app": o.source_app, "source_type": o.source_type,
            "appointment_no": o.appointment_no, "job_no": o.job_no, "task_no": o.task_no,
            "subject": "Boiler service", "start": "2026-11-21T09:00:00Z",
            "end": "2026-11-21T11:00:00Z", "resources": [{"resource_no": "R1"}],
        }
    )


class EventFactory(DjangoModelFactory):
    class Meta:
        model = AppointmentEvent

    client = None
    event_id = factory.Sequence(lambda n: f"ev-{n}")
    action = "create"
    occurred_at = factory.LazyFunction(timezone.now)
    appointment = factory.SubFactory(AppointmentFactory)
    payload = factory.LazyAttribute(lambda o: o.appointment.data)
    dispatch_count = 1


class DispatchFactory(DjangoModelFactory):
    class Meta:
        model = Dispatch

    event = factory.SubFactory(EventFactory)
    appointment = factory.SelfAttribute("event.appointment")
    connector = factory.SubFactory(ConnectorFactory)
    action = factory.SelfAttribute("event.action")
    payload = factory.LazyAttribute(lambda o: o.event.payload)
    status = "pending"
    next_attempt_at = factory.LazyFunction(timezone.now)


class AttemptFactory(DjangoModelFactory):
    class Meta:
        model = Attempt

    dispatch = factory.SubFactory(DispatchFactory)
    connector = factory.SelfAttribute("dispatch.connector")
    number = factory.LazyAttribute(lambda o: o.dispatch.attempt_log.count() + 1)
    started_at = factory.LazyFunction(timezone.now)
    duration_ms = 120
    outcome = "retry"
    status_code = 503
    error_class = "HTTPStatusError"
    message = "The back office answered 503 Service Unavailable."
    hint = "The back office is down or overloaded; DimeConnect retries on its schedule."
    response_excerpt = "<html><body>Service Unavailable</body></html>"


AGE_FIELDS = {
    Dispatch: ("created_at", "updated_at"),
    AppointmentEvent: ("received_at",),
    Appointment: ("created_at", "updated_at"),
}


def backdate(obj: models.Model, *, days: float, fields: tuple[str, ...] | None = None) -> None:
    """Make a row `days` old: its auto-set time fields (which save() overwrites) are updated
    in the database, and on `obj`."""
    when = timezone.now() - timedelta(days=days)
    names = fields or AGE_FIELDS[type(obj)]
    type(obj)._default_manager.filter(pk=obj.pk).update(**{name: when for name in names})
    for name in names:
        setattr(obj, name, when)
