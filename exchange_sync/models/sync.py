"""Sync state: links between appointments and Outlook events, the outbound queue, the inbound
subscriptions and delta rounds, and the sync log."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from connectors.models import Appointment

from .resources import Resource

# The extended property that marks an Outlook event as DimeConnect's (its value: the
# appointment GUID). Graph: singleValueLegacyExtendedProperty, "String {GUID} Name <name>".
EXTENDED_PROPERTY_ID = "String {6c1b3f7e-2d4a-4f0e-9b8c-5a7d3e1f2c90} Name DimeConnectAppointment"
# Namespace of the deterministic transactionIds (uuid5 of appointment, resource, generation).
TRANSACTION_NAMESPACE = uuid.UUID("0f6e3a52-9d71-4c38-8b2e-7a4c1d5e9f03")


class LinkOrigin(models.TextChoices):
    PLANNER = "planner", "Planner (DimeConnect created the Outlook event)"
    OUTLOOK = "outlook", "Outlook (the appointment came from the mailbox)"


class EventLink(models.Model):
    """One appointment ↔ one Outlook event in one resource's mailbox.

    A planner-origin link is DimeConnect's own event: only those are ever updated or deleted in
    Outlook. `event_id` is blank while no event exists (before the first create, and after a
    delete: the row stays, with `generation` counted up, so the next create gets a new
    deterministic transactionId). `content_hash` is the hash of the event as last written or
    read, so an unchanged appointment is never written again and our own writes are recognised
    when they come back through delta (with `change_key`).
    """

    appointment = models.ForeignKey(
        Appointment, on_delete=models.CASCADE, related_name="exchange_links"
    )
    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="links")
    origin = models.CharField(max_length=10, choices=LinkOrigin.choices,
                              default=LinkOrigin.PLANNER)
    event_id = models.CharField("event ID", max_length=255, blank=True)
    change_key = models.CharField(max_length=100, blank=True)
    series_master_id = models.CharField(max_length=255, blank=True)
    generation = models.PositiveIntegerField(default=0)
    content_hash = models.CharField(max_length=64, blank=True)
    planner_state_at = models.DateTimeField(
        null=True, blank=True, help_text="The appointment state (`state_at`) last synced."
    )
    outlook_modified_at = models.DateTimeField(
        null=True, blank=True, help_text="The event's lastModifiedDateTime last seen."
    )
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-synced_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "resource"], name="event_link_unique"
            )
        ]
        indexes = [models.Index(fields=["resource", "event_id"], name="event_link_by_event")]

    def __str__(self) -> str:
        return f"{self.appointment_id} ↔ {self.event_id or '(no event)'} @ {self.resource_id}"

    def forget_event(self) -> None:
        """The event is gone from the mailbox: forget it (saved), and count a generation, so
        the next create gets a new transactionId (Graph would replay the old one)."""
        self.event_id = self.change_key = self.content_hash = ""
        self.generation += 1
        self.synced_at = timezone.now()
        self.save(update_fields=["event_id", "change_key", "content_hash", "generation",
                                 "synced_at"])

    @property
    def transaction_id(self) -> str:
        """The create's transactionId: the same for every retry of one create."""
        name = f"{self.appointment.guid}:{self.resource_id}:{self.generation}"
        return str(uuid.uuid5(TRANSACTION_NAMESPACE, name))


class PendingSync(models.Model):
    """An appointment whose Outlook events must be brought up to date (the outbound queue).

    `version` counts changes: a worker removes the row only if no change came in while it
    worked, so a change made during a push is never lost.
    """

    appointment = models.OneToOneField(
        Appointment, on_delete=models.CASCADE, related_name="exchange_pending"
    )
    version = models.PositiveIntegerField(default=1)
    queued_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(db_index=True)
    not_before = models.DateTimeField(
        null=True, blank=True,
        help_text="Graph asked to wait (Retry-After) until then; a newer change does not "
        "make it due sooner.",
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    force = models.BooleanField(
        default=False, help_text="Rewrite the events even where nothing changed (a full push)."
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["next_attempt_at", "id"]
        verbose_name = "pending Outlook update"

    def __str__(self) -> str:
        return f"appointment {self.appointment_id} (v{self.version})"


class Subscription(models.Model):
    """A Graph change-notification subscription on one mailbox's events.

    Only a hash of `clientState` is kept: a notification's clientState is hashed and compared
    in constant time (exchange_sync/subscriptions.py).
    """

    resource = models.OneToOneField(
        Resource, on_delete=models.CASCADE, related_name="subscription"
    )
    subscription_id = models.CharField("subscription ID", max_length=100, unique=True)
    client_state_hash = models.CharField(max_length=64, editable=False)
    resource_path = models.CharField(max_length=300)
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    renewed_at = models.DateTimeField(null=True, blank=True)
    last_notification_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["expires_at"]

    def __str__(self) -> str:
        return f"{self.resource} until {self.expires_at:%Y-%m-%d %H:%M}"


class Notification(models.Model):
    """One change or lifecycle notification as Graph posted it (stored before anything else)."""

    class Kind(models.TextChoices):
        CHANGE = "change", "Change"
        LIFECYCLE = "lifecycle", "Lifecycle"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="notifications",
    )
    subscription_id_text = models.CharField("subscription ID", max_length=100)
    change_type = models.CharField(
        max_length=40, blank=True, help_text="created | updated | deleted, or the lifecycle event."
    )
    resource_path = models.CharField(max_length=500, blank=True)
    payload = models.JSONField(help_text="The notification, without its clientState.")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.change_type} ({self.subscription_id_text})"


class MailboxState(models.Model):
    """One mailbox's inbound state: its delta link, the next round, the lock, held deletions."""

    resource = models.OneToOneField(
        Resource, on_delete=models.CASCADE, related_name="mailbox_state"
    )
    delta_link = models.TextField(blank=True, editable=False)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    round_due_at = models.DateTimeField(
        null=True, blank=True, db_index=True,
        help_text="A delta round is due (debounced after notifications).",
    )
    full_round_needed = models.BooleanField(default=False)
    round_lock_until = models.DateTimeField(null=True, blank=True)
    round_owner = models.CharField(max_length=100, blank=True)
    last_round_at = models.DateTimeField(null=True, blank=True)
    last_round_ok = models.BooleanField(null=True)
    last_full_round_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    held_deletions = models.JSONField(
        default=list, blank=True,
        help_text="Link ids a round would have deleted, waiting for an administrator.",
    )
    held_at = models.DateTimeField(null=True, blank=True)
    held_reason = models.TextField(blank=True)

    class Meta:
        verbose_name = "mailbox state"

    def __str__(self) -> str:
        return f"mailbox of {self.resource}"


class SyncDirection(models.TextChoices):
    OUTBOUND = "outbound", "Planner → Outlook"
    INBOUND = "inbound", "Outlook → planner"


class SyncLogEntry(models.Model):
    """Something the sync did or refused that an administrator or support may ask about."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        DELETED = "deleted", "Deleted"
        CONFLICT = "conflict", "Conflict"
        ERROR = "error", "Error"
        HELD = "held", "Held for confirmation"
        CONFIRMED = "confirmed", "Confirmed"
        SUBSCRIPTION = "subscription", "Subscription"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    direction = models.CharField(max_length=10, choices=SyncDirection.choices)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    resource = models.ForeignKey(
        Resource, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    appointment = models.ForeignKey(
        Appointment, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="exchange_log",
    )
    event_id = models.CharField(max_length=255, blank=True)
    message = models.TextField()
    hint = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "sync log entry"
        verbose_name_plural = "sync log"

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message[:60]}"
