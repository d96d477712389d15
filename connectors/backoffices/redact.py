"""Keeping secrets out of logs, excerpts, error messages and stored test results."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

from django.conf import settings

if TYPE_CHECKING:
    from connectors.models import Connector

MASK = "[redacted]"
EXCERPT_LIMIT_BYTES = 20_000
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
     "webhook-signature", "www-authenticate"}
)
# Token-shaped values wherever they appear, whatever produced them.
_PATTERNS = [
    re.compile(r"(?i)\b(bearer|basic|negotiate|ntlm)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r'(?i)("(?:access_token|refresh_token|id_token|client_secret|password|secret)"\s*:\s*")'
        r'[^"]*(")'
    ),
    re.compile(r"(?i)\b((?:client_secret|password|access_token|client_assertion)=)[^&\s\"']+"),
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"),
]
MIN_SECRET_LENGTH = 4


class Redactor:
    """Replaces known secrets (and token-shaped values) with "[redacted]"."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Also hide this value (and its URL- and JSON-escaped forms) from now on."""
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            return
        self._secrets.update(
            {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
        )

    def text(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        text = _PATTERNS[0].sub(lambda m: f"{m.group(1)} {MASK}", text)
        text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}{MASK}{m.group(2)}", text)
        text = _PATTERNS[2].sub(lambda m: f"{m.group(1)}{MASK}", text)
        return _PATTERNS[3].sub(MASK, text)

    def excerpt(self, text: str, limit_bytes: int = EXCERPT_LIMIT_BYTES) -> str:
        """The redacted text cut to at most `limit_bytes` of UTF-8."""
        redacted = self.text(text)
        encoded = redacted.encode()
        if len(encoded) <= limit_bytes:
            return redacted
        marker = "\n…[cut]"
        return encoded[: limit_bytes - len(marker.encode())].decode(errors="ignore") + marker

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {
            name: MASK if name.lower() in SENSITIVE_HEADERS else self.text(value)
            for name, value in headers.items()
        }


def redactor_for(connector: Connector) -> Redactor:
    """A redactor that knows every secret the connector (and the service account) holds."""
    from connectors.models import SECRET_FIELDS

    secrets = [getattr(connector, name) for name in SECRET_FIELDS]
    secrets.append(getattr(connector, "previous_signing_secret", ""))
    secrets.append(settings.BACKOFFICE_SERVICE_PASSWORD)
    return Redactor(secrets)
