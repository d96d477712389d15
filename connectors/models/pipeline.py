"""Appointments, the events that change them, and the outbox that writes them back.

An accepted event, its appointment's new state and one Dispatch per matching connector are
written in one transaction (services/intake.py). A Dispatch is the unit of delivery: claimed
under a lease by one worker at a time, attempted, and retried on its schedule; every Attempt is
kept (redacted) for the dispatch log.
"""

from __future__ import annotations

import uuid

from django.db import models

from connectors.compat import CrudType
from connectors.fields import BulkJSONField

from .connector import ApiClient, Connector


class Appointment(models.Model):
    """The current state of one appointment, as the newest accepted event described it."""

    guid = models.UUIDField(unique=True)
    source_app = models.CharField(max_length=30, db_index=True)
    source_type = models.CharField(max_length=10, blank=True)
    appointment_id = models.BigIntegerField(null=True, blank=True)
    appointment_no = models.CharField(max_length=50, blank=True, db_index=True)
    job_no = models.CharField(max_length=50, blank=True, db_index=True)
    task_no = models.CharField(max_length=50, blank=True, db_index=True)
    data = BulkJSONField(default=dict, help_text="The appointment as the event API carries it.")
    state_at = models.DateTimeField(help_text="`occurred_at` of the event that set this state.")
    deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        label = self.appointment_no or (self.appointment_id and str(self.appointment_id))
        return f"{self.source_app} {label or self.guid}"


class AppointmentResource(models.Model):
    """A resource no the appointment was assigned to, in any accepted state (intake.py).

    Denormalised from `Appointment.data["resources"]` so the dispatch log can search by
    resource through an index (a JSON lookup cannot use one on SQLite). Never removed when a
    later state drops the resource: "which appointments did R1 ever have" is the question.
    """

    appointment = models.ForeignKey(
        Appointment, on_delete=models.CASCADE, related_name="resource_nos"
    )
    resource_no = models.CharField(max_length=50, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "resource_no"], name="appointment_resource_unique"
            )
        ]

    def __str__(self) -> str:
        return self.resource_no


class AppointmentEvent(models.Model):
    """One change a back office (or the Exchange sync) reported; never processed twice."""

    client = models.ForeignKey(
        ApiClient, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    event_id = models.CharField(max_length=200)
    action = models.CharField(max_length=10, choices=CrudType.choices)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="events")
    payload = BulkJSONField(help_text="The appointment as received.")
    source = models.CharField(
        max_length=20, default="api", help_text="api | dimescheduler | exchange"
    )
    stale = models.BooleanField(
        default=False,
        help_text="Older than the stored state: recorded, but it changed nothing and sent nothing.",
    )
    dispatch_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at"]
        # The dispatch log searches by event id alone (the unique constraint leads with client).
        indexes = [models.Index(fields=["event_id"], name="event_by_event_id")]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "event_id"], name="event_unique_per_client"
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.event_id}"


class DispatchStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Retrying"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# The permissions the dispatch log, the admin and the API check (codes with the app label).
VIEW_DISPATCH_PERMISSION = "connectors.view_dispatch"
RETRY_DISPATCH_PERMISSION = "connectors.retry_dispatch"

OPEN_STATUSES = (DispatchStatus.PENDING, DispatchStatus.SENDING, DispatchStatus.RETRYING)
# What "retry now" accepts: anything not being sent and not delivered.
RETRYABLE_STATUSES = (
    DispatchStatus.FAILED, DispatchStatus.CANCELLED, DispatchStatus.RETRYING,
    DispatchStatus.PENDING,
)


class Dispatch(models.Model):
    """One change to write back to one connector (an outbox row)."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.ForeignKey(
        AppointmentEvent, on_delete=models.CASCADE, related_name="dispatches"
    )
    appointment = models.ForeignKey(
        Appointment, on_delete=models.CASCADE, related_name="dispatches"
    )
    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="dispatches")
    action = models.CharField(max_length=10, choices=CrudType.choices)
    payload = BulkJSONField(help_text="The appointment state to send.")
    status = models.CharField(
        max_length=10, choices=DispatchStatus.choices, default=DispatchStatus.PENDING
    )
    attempts = models.PositiveIntegerField(
        default=0, help_text="Attempts in the current round of the retry schedule."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=100, blank=True)
    last_error = models.TextField(blank=True)
    last_hint = models.TextField(blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    superseded_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="dispatch_due"),
            models.Index(fields=["appointment", "connector", "id"], name="dispatch_chain"),
            # The health page reads counts, hours and latencies from this index alone.
            models.Index(fields=["connector", "status", "created_at", "delivered_at"],
                         name="dispatch_health"),
        ]
        permissions = [("retry_dispatch", "Can retry a dispatch")]
        verbose_name_plural = "dispatches"

    def __str__(self) -> str:
        return f"{self.action} → {self.connector_id} ({self.status})"

    @property
    def message_id(self) -> str:
        """The stable id receivers see (e.g. `webhook-id`): the same on every attempt."""
        return f"msg_{self.uid.hex}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class AttemptOutcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    RETRY = "retry", "Failed, will retry"
    FAILED = "failed", "Failed"
    COALESCED = "coalesced", "Coalesced"
    CANCELLED = "cancelled", "Cancelled"
    REQUESTED = "requested", "Retry requested"
    LOST = "lost", "Worker lost"


class Attempt(models.Model):
    """One try of a dispatch, as the dispatch log shows it (redacted, excerpt ≤ 20 kB)."""

    dispatch = models.ForeignKey(Dispatch, on_delete=models.CASCADE, related_name="attempt_log")
    # The dispatch's connector, copied (delivery.common.log_attempt) so that the health page
    # counts failed attempts per connector and window from one index instead of joining every
    # attempt to its dispatch (docs/BENCHMARKS.md). Indexed by `attempt_health` below.
    connector = models.ForeignKey(
        Connector, on_delete=models.CASCADE, related_name="+", editable=False, db_index=False
    )
    user = models.CharField(
        max_length=150, blank=True, help_text="Who asked for it (a manual retry or resume)."
    )
    number = models.PositiveIntegerField(help_text="Position in the dispatch's log, from 1.")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error_class = models.CharField(max_length=100, blank=True)
    message = models.TextField(blank=True)
    hint = models.TextField(blank=True)
    request = BulkJSONField(
        default=dict, blank=True, help_text="What was sent (method, URL, headers, body), redacted."
    )

    class Meta:
        ordering = ["dispatch", "number"]
        indexes = [
            models.Index(fields=["dispatch", "number"], name="attempt_by_dispatch"),
            # The health page: failed attempts per connector and window, the latest one.
            models.Index(fields=["connector", "outcome", "started_at"], name="attempt_health"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.dispatch_id}: {self.outcome}"
