"""Access tokens the fake token server issues and the fake resource servers accept.

A token is `base64url(json claims).base64url(hmac)` signed with a fixed test key, so a fake
started in another process (`python -m tests.fakes.…`) accepts tokens from the token fake.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

TEST_SIGNING_KEY = b"dimeconnect-fake-token-signing-key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(claims: dict[str, Any], *, lifetime_s: int = 3600) -> str:
    """A signed token carrying `claims` plus `exp`."""
    body = _b64(json.dumps({**claims, "exp": int(time.time()) + lifetime_s}).encode())
    signature = _b64(hmac.new(TEST_SIGNING_KEY, body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def verify(token: str) -> dict[str, Any] | None:
    """The claims of a valid, unexpired token; None otherwise."""
    try:
        body, signature = token.split(".")
    except ValueError:
        return None
    expected = _b64(hmac.new(TEST_SIGNING_KEY, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature, expected):
        return None
    claims: dict[str, Any] = json.loads(_unb64(body))
    if claims.get("exp", 0) < time.time():
        return None
    return claims
