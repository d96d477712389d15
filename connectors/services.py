"""Connector and API-client services: the one place writes to these models happen.

Interfaces (admin, management commands, later the API) parse input, call one function here and
report. Validation is the model's `full_clean`, so every interface refuses the same things.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from . import compat
from .backoffices import signing
from .compat import ConnectorType
from .models import SECRET_FIELDS, ApiClient, Connector

if TYPE_CHECKING:
    from .backoffices.connection import ConnectionTestResult

# Fields a connector spec (apply_connectors, import_backoffices) may set, in DESIGN.md's order.
SPEC_FIELDS: tuple[str, ...] = (
    "name", "description", "type", "enabled", "uri", "api_type", "source_app", "source_type",
    "crud_types", "auth_type", "login", "password", "tenant_id", "client_id", "client_secret",
    "token_url", "scope", "signing_secret", "timeout_s", "payload_style", "retry_schedule",
)


def signing_secret_generate() -> str:
    """A new Standard Webhooks secret: `whsec_` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def connector_prepare(connector: Connector) -> None:
    """Fill what a connector gets by default before it is validated and saved.

    Secrets its type and auth type do not use are dropped (a password left behind by a switch to
    Entra ID would be hidden in the admin, yet kept). A webhook connector without a signing
    secret gets a new one.
    """
    required, optional = compat.AUTH_FIELDS.get(connector.auth_type, ((), ()))
    used = set(required + optional)
    used.update(
        name for name, types in compat.TYPE_ONLY_FIELDS.items() if connector.type in types
    )
    for name in SECRET_FIELDS:
        if name not in used:
            setattr(connector, name, "")
    if connector.type == ConnectorType.WEBHOOK and not connector.signing_secret:
        connector.signing_secret = signing_secret_generate()
    # A rotated-out signing secret goes with the signing secret, or once it stops signing.
    if not connector.signing_secret or not signing.previous_secret_active(
        connector, timezone.now()
    ):
        connector.previous_signing_secret = ""


def webhook_rotate_signing_secret(connector: Connector) -> None:
    """Give a webhook connector a new signing secret and save it.

    The replaced secret keeps signing beside the new one for signing.ROTATION_OVERLAP (24 h),
    so receivers can switch without rejecting a delivery; after that only the new one signs.
    A second rotation within the overlap retires the oldest secret at once. Raises
    ValidationError for a connector that is not a webhook.
    """
    if connector.type != ConnectorType.WEBHOOK:
        raise ValidationError(f"{connector.name} is not a webhook: it has no signing secret.")
    connector.previous_signing_secret = connector.signing_secret
    connector.signing_secret = signing_secret_generate()
    connector.signing_secret_rotated_at = timezone.now()
    connector.save(update_fields=[
        "signing_secret", "previous_signing_secret", "signing_secret_rotated_at", "updated_at",
    ])


def connector_save(connector: Connector) -> Connector:
    """Validate (raising ValidationError keyed by field) and save one connector."""
    connector_prepare(connector)
    connector.full_clean()
    connector.save()
    return connector


def connectors_set_enabled(queryset: QuerySet[Connector], *, enabled: bool) -> int:
    """Enable or disable the connectors; returns how many changed."""
    return queryset.exclude(enabled=enabled).update(enabled=enabled)


# --- Declarative upsert (apply_connectors, import_backoffices) -------------------------------


@dataclass
class ConnectorSpec:
    """The wanted state of one connector: `label` says where it came from (for errors)."""

    label: str
    values: dict[str, Any]


@dataclass
class SpecChange:
    name: str
    action: str  # "create" | "update" | "unchanged"
    fields: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.action == "update":
            return f"update {self.name}: {', '.join(self.fields)}"
        return f"{self.action} {self.name}"


class SpecError(Exception):
    """One or more specs are invalid; `errors` lists "<label>: <field>: <message>" lines."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


def field_messages(exc: ValidationError) -> list[tuple[str, str]]:
    if hasattr(exc, "error_dict"):
        return [
            (name, message)
            for name, errors in exc.message_dict.items()
            for message in errors
        ]
    return [("__all__", message) for message in exc.messages]


def _apply_values(
    connector: Connector, values: Mapping[str, Any], errors: list[tuple[str, str]]
) -> list[str]:
    """Set the given values; returns the changed field names (secrets compared, never shown).

    A value the field cannot read (an unknown CRUD type) is left unset and added to `errors`.
    """
    changed = []
    for name, value in values.items():
        if name in SECRET_FIELDS and value is None:
            continue  # null/absent secret keeps the stored one
        current = getattr(connector, name)
        if name == "crud_types":
            try:
                value = connector._meta.get_field(name).to_python(value)  # type: ignore[union-attr]
            except ValidationError as exc:
                errors.extend((name, message) for message in exc.messages)
                continue
        if current != value:
            setattr(connector, name, value)
            changed.append(name)
    return changed


def connectors_upsert(specs: Sequence[ConnectorSpec], *, dry_run: bool = False) -> list[SpecChange]:
    """Create or update connectors by name, all or nothing.

    Every spec is validated with the model's rules before anything is written; on any error
    raises SpecError listing each one as "<label>: <field>: <message>" and writes nothing.
    With `dry_run` the changes are computed and reported but not saved.
    """
    errors: list[str] = []
    seen: dict[str, str] = {}
    planned: list[tuple[Connector, SpecChange]] = []
    existing = {
        c.name: c for c in Connector.objects.filter(name__in=[s.values.get("name") for s in specs])
    }
    for spec in specs:
        name = spec.values.get("name") or ""
        if name in seen:
            errors.append(f"{spec.label}: name: '{name}' is also used by {seen[name]}.")
            continue
        seen[name] = spec.label
        connector = existing.get(name) or Connector()
        is_new = connector.pk is None
        field_errors: list[tuple[str, str]] = []
        changed = _apply_values(connector, spec.values, field_errors)
        connector_prepare(connector)
        try:
            connector.full_clean(validate_unique=False)
        except ValidationError as exc:
            field_errors.extend(field_messages(exc))
        if field_errors:
            errors.extend(f"{spec.label}: {f}: {m}" for f, m in field_errors)
            continue
        action = "create" if is_new else ("update" if changed else "unchanged")
        planned.append((connector, SpecChange(name, action, [] if is_new else changed)))
    if errors:
        raise SpecError(errors)
    if not dry_run:
        with transaction.atomic():
            for connector, change in planned:
                if change.action != "unchanged":
                    connector.save()
    return [change for _, change in planned]


# --- API clients ------------------------------------------------------------------------------

API_KEY_PREFIX = "dc_"


def _hash_key(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough (no dictionary to guess from).
    return hashlib.sha256(key.encode()).hexdigest()


def api_client_source_apps_clean(source_apps: Iterable[str]) -> list[str]:
    """Stripped, de-duplicated source app codes; raises ValidationError naming a bad one."""
    cleaned: list[str] = []
    for app in source_apps:
        code = str(app).strip()
        if not code:
            continue
        if len(code) > 30:
            raise ValidationError(f"Source app '{code[:40]}' is longer than 30 characters.")
        if code not in cleaned:
            cleaned.append(code)
    if not cleaned:
        raise ValidationError("Give at least one allowed source app.")
    return cleaned


def api_client_assign_key(client: ApiClient) -> str:
    """Give the client a new random key (not saved); returns the key, which is never stored."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    client.key_prefix, client.key_hash = key[:16], _hash_key(key)
    return key


def api_client_create(*, name: str, source_apps: Iterable[str]) -> tuple[ApiClient, str]:
    """Create an API client; returns it and its key (the only time the key exists in clear).

    Raises ValidationError for a taken name or bad source apps.
    """
    client = ApiClient(name=name.strip(), source_apps=api_client_source_apps_clean(source_apps))
    key = api_client_assign_key(client)
    client.full_clean()
    client.save()
    return client, key


def api_client_rotate_key(client: ApiClient) -> str:
    """Replace the client's key (the old one stops working at once); returns the new key."""
    key = api_client_assign_key(client)
    client.save(update_fields=["key_prefix", "key_hash"])
    return key


def api_client_for_key(key: str) -> ApiClient | None:
    """The active client the key belongs to, or None."""
    client = ApiClient.objects.filter(key_prefix=key[:16], is_active=True).first()
    if client and hmac.compare_digest(client.key_hash, _hash_key(key)):
        return client
    return None


# --- Test connection --------------------------------------------------------------------------


def connector_test_connection(connector: Connector) -> ConnectionTestResult:
    """Run "test connection" and store its result (ok, when, steps, message, hint) on the
    connector. The stored text is redacted: it never holds a secret."""
    from .backoffices.connection import record_test_result, run_connection_test

    result = run_connection_test(connector)
    record_test_result(connector, result)
    return result
