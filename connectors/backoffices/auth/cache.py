"""The per-process token cache: one fresh token per connector and auth settings."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from connectors.compat import AuthType

from ..base import BackOfficeError
from .tokens import TokenInfo, has_token, request_token

if TYPE_CHECKING:
    from connectors.models import Connector

logger = logging.getLogger(__name__)

REFRESH_MARGIN_S = 300.0  # refresh when less than min(this, 10 % of the lifetime) remains


@dataclass
class _Cached:
    token: TokenInfo
    refresh_at: float


_Key = tuple[Any, str]  # (connector pk, fingerprint)
_cache: dict[_Key, _Cached] = {}
_fetch_locks: dict[_Key, threading.Lock] = {}
_lock = threading.Lock()
# Fingerprints are keyed hashes, so one seen in a debugger cannot be tested against guesses.
_FINGERPRINT_KEY = secrets.token_bytes(32)


def clear_token_cache() -> None:
    """Forget every cached token (tests; a secret rotated outside the connector)."""
    with _lock:
        _cache.clear()
        _fetch_locks.clear()


def _fingerprint(connector: Connector) -> str:
    parts = (
        connector.type, connector.auth_type, connector.tenant_id, connector.client_id,
        connector.client_secret, connector.token_url, connector.scope,
        settings.ENTRA_AUTHORITY_HOST,
    )
    return hmac.new(_FINGERPRINT_KEY, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def _fetch_lock(key: _Key) -> threading.Lock:
    with _lock:
        return _fetch_locks.setdefault(key, threading.Lock())


def _store(key: _Key, token: TokenInfo) -> None:
    lifetime = max(token.expires_at - time.time(), 0.0)
    entry = _Cached(token, token.expires_at - min(REFRESH_MARGIN_S, lifetime / 10))
    with _lock:  # a saved connector's tokens for older settings can never be used again
        for old in [k for k in _cache if key[0] is not None and k[0] == key[0] and k != key]:
            _cache.pop(old, None)
            _fetch_locks.pop(old, None)
        _cache[key] = entry


def fetch_token(connector: Connector, *, force: bool = False) -> TokenInfo:
    """An access token for the connector, from the cache while it is fresh.

    The cache is keyed by the connector's pk and a fingerprint of its auth settings and secrets,
    so a changed secret never gets an old token. `force` fetches anew and replaces the cached one.
    Concurrent callers for one connector wait for a single fetch. Raises BackOfficeError.
    """
    if not has_token(connector):
        raise BackOfficeError(
            f"{AuthType(connector.auth_type).label} authentication uses no token.",
            permanent=True,
            error_class="ConfigurationError",
        )
    key = (connector.pk, _fingerprint(connector))
    with _fetch_lock(key):
        cached = _cache.get(key)
        if cached is not None and not force and time.time() < cached.refresh_at:
            return cached.token
        token = request_token(connector)
        _store(key, token)
    logger.info(
        "Fetched a %s token for connector %s, valid for %.0f s",
        connector.auth_type, connector.name, token.expires_at - time.time(),
    )
    return token
