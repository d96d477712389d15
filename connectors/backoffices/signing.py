"""Standard Webhooks signatures (https://www.standardwebhooks.com, spec "Signature scheme").

A message is signed over `"{webhook-id}.{webhook-timestamp}.{body}"` with HMAC-SHA256; the key is
the base64-decoded part of the `whsec_…` secret. `webhook-signature` holds space-delimited
`v1,<base64 signature>` entries, and a receiver accepts the message when any of them matches:
that is what lets a rotated-out secret keep signing beside the new one (the spec's "signature
rotation"), so receivers can switch secrets without rejecting a single delivery.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.models import Connector

SECRET_PREFIX = "whsec_"
# How long a replaced secret keeps signing after a rotation.
ROTATION_OVERLAP = timedelta(hours=24)


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret (the prefix is optional, as in the spec's libraries).

    Raises ValueError when the rest is not base64 or is empty.
    """
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the signing secret is not base64 after its whsec_ prefix") from None
    if not key:
        raise ValueError("the signing secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256>` signature of the message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, with one signature per secret."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
    }


def previous_secret_active(connector: Connector, now: datetime) -> bool:
    """Whether the secret replaced by the last rotation still signs (within ROTATION_OVERLAP)."""
    rotated_at = connector.signing_secret_rotated_at
    return bool(
        connector.previous_signing_secret
        and rotated_at is not None
        and now - rotated_at < ROTATION_OVERLAP
    )


def signing_secrets(connector: Connector, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, plus the previous one during the overlap."""
    secrets = [connector.signing_secret] if connector.signing_secret else []
    if previous_secret_active(connector, now):
        secrets.append(connector.previous_signing_secret)
    return secrets
