"""Connectors (where appointment changes are written back to) and API clients (who may post)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models

from connectors import compat, retry
from connectors.compat import ApiType, AuthType, ConnectorType, CrudType, PayloadStyle
from connectors.fields import EncryptedTextField, MultipleChoiceField

HTTP_URL = URLValidator(schemes=["http", "https"], message="Enter an absolute http(s) URL.")

# Secrets: encrypted at rest, write-only everywhere, never logged.
SECRET_FIELDS: tuple[str, ...] = ("password", "client_secret", "signing_secret")


def all_crud_types() -> list[str]:
    return list(CrudType.values)


class Connector(models.Model):
    # Basic info
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    # Connector info
    type = models.CharField(max_length=20, choices=ConnectorType.choices)
    enabled = models.BooleanField(
        default=True,
        help_text="When off, DimeConnect writes nothing back through this connector.",
    )
    uri = models.CharField(
        "web service URI",
        max_length=500,
        validators=[HTTP_URL],
        help_text="The endpoint DimeConnect posts planning data back to.",
    )
    api_type = models.CharField("API type", max_length=10, choices=ApiType.choices)
    source_app = models.CharField(
        max_length=30,
        db_index=True,
        help_text="The source application code the back office sends; appointments of this "
        "source app are written back through this connector.",
    )
    source_type = models.CharField(max_length=10, blank=True)
    crud_types = MultipleChoiceField(
        "CRUD types",
        choices=CrudType.choices,
        default=all_crud_types,
        help_text="Which changes to send: created, updated and/or deleted appointments.",
    )
    payload_style = models.CharField(
        max_length=20,
        choices=PayloadStyle.choices,
        default=PayloadStyle.CANONICAL,
        help_text="Webhook only: the body DimeConnect posts.",
    )
    timeout_s = models.PositiveSmallIntegerField(
        "timeout (seconds)",
        default=15,
        validators=[MinValueValidator(1), MaxValueValidator(30)],
    )
    retry_schedule = models.CharField(
        max_length=200,
        blank=True,
        help_text="Delays between attempts, e.g. \"0, 5s, 5m, 30m, 2h\". Blank: the default "
        f"({retry.format_schedule(retry.DEFAULT_RETRY_SCHEDULE)}).",
    )

    # Authentication info
    auth_type = models.CharField(
        "authentication", max_length=20, choices=AuthType.choices, default=AuthType.BASIC
    )
    login = models.CharField(max_length=200, blank=True)
    password = EncryptedTextField(blank=True)
    tenant_id = models.CharField("tenant ID", max_length=100, blank=True)
    client_id = models.CharField("client ID", max_length=200, blank=True)
    client_secret = EncryptedTextField(blank=True)
    token_url = models.CharField(
        "authorization server",
        max_length=500,
        blank=True,
        validators=[HTTP_URL],
        help_text="The OAuth2 token endpoint.",
    )
    scope = models.CharField(
        max_length=500, blank=True, help_text="Optional, space-delimited scopes."
    )
    signing_secret = EncryptedTextField(
        blank=True,
        help_text="Webhook only: the whsec_… secret the payloads are signed with "
        "(Standard Webhooks). Generated when left blank.",
    )
    # Secret rotation (services.webhook_rotate_signing_secret): the replaced secret keeps
    # signing beside the new one for a while, so receivers can switch without dropping events.
    previous_signing_secret = EncryptedTextField(blank=True, editable=False)
    signing_secret_rotated_at = models.DateTimeField(null=True, editable=False)

    # Status (written by "test connection"; read-only in the admin)
    last_test_ok = models.BooleanField(null=True, editable=False)
    last_tested_at = models.DateTimeField(null=True, editable=False)
    last_test_message = models.TextField(blank=True, editable=False)
    last_test_result = models.JSONField(default=dict, blank=True, editable=False)

    # Write-back health (set by the dispatch pipeline; read-only in the admin)
    failing_since = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text="When deliveries started failing without a success since.",
    )
    quarantined_at = models.DateTimeField(null=True, blank=True, editable=False)
    quarantine_reason = models.TextField(blank=True, editable=False)
    # Set when a "deliver backlog" task is queued for this connector, cleared when one starts:
    # while it is set, new dispatches need no task of their own (delivery.common.ring).
    backlog_queued_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["source_app", "enabled"])]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Refuse what DESIGN.md's table refuses and what the chosen auth type needs.

        Raises ValidationError keyed by field, each message naming what is allowed.
        """
        errors: dict[str, Any] = dict(
            compat.combination_errors(self.type, self.api_type, self.auth_type)
        )
        required, _ = compat.AUTH_FIELDS.get(self.auth_type, ((), ()))
        auth_label = AuthType(self.auth_type).label if self.auth_type in AuthType.values else ""
        for field in required:
            if not getattr(self, field) and field not in errors:
                verbose = Connector._meta.get_field(field).verbose_name  # type: ignore[union-attr]
                errors[field] = f"{auth_label} authentication needs a {verbose}."
        if self.type and self.type != ConnectorType.WEBHOOK:
            if self.payload_style != PayloadStyle.CANONICAL:
                errors["payload_style"] = (
                    "Only webhook connectors have a payload style; "
                    f"use {PayloadStyle.CANONICAL.value} for other types."
                )
        if self.retry_schedule:
            try:
                retry.parse_schedule(self.retry_schedule)
            except ValidationError as exc:
                errors["retry_schedule"] = exc.messages
        if errors:
            raise ValidationError(errors)

    def retry_delays(self) -> tuple[int, ...]:
        """The delays before each attempt: the override when set, else the default."""
        if self.retry_schedule:
            return retry.parse_schedule(self.retry_schedule)
        return retry.DEFAULT_RETRY_SCHEDULE


class ApiClient(models.Model):
    """A back-office system allowed to post events for some source apps.

    The key is shown once at creation; only its SHA-256 is stored, found by its prefix.
    """

    name = models.CharField(max_length=100, unique=True)
    key_prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    source_apps = models.JSONField(
        "allowed source apps",
        default=list,
        help_text="Source app codes this client may post events for.",
    )
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "API client"

    def __str__(self) -> str:
        return self.name

    def allows(self, source_app: str) -> bool:
        return source_app in self.source_apps
