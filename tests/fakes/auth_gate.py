"""Authentication checks the fake back offices apply before answering.

A fake's state holds an `AuthPolicy`; `gate(handler, policy)` returns True when the request may
proceed, and otherwise has already answered 401 (with the challenge a real server sends).
"""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import tokens

if TYPE_CHECKING:
    from .server import FakeHandler

UNAUTHORIZED_ODATA = {
    "error": {
        "code": "Authentication_InvalidCredentials",
        "message": "The server has rejected the client credentials.  "
        "CorrelationId:  4c1d6a0e-0000-4000-8000-000000000000.",
    }
}


@dataclass
class AuthPolicy:
    """What a fake accepts. `scheme`: none | basic | bearer (| ntlm | negotiate, see below)."""

    scheme: str = "none"
    login: str = ""
    password: str = ""
    audience: str = ""  # bearer: the scope/audience a token must carry ("" = any)


def _challenge(handler: FakeHandler, scheme: str) -> None:
    handler.reply(401, UNAUTHORIZED_ODATA, headers={"WWW-Authenticate": scheme})


def check_basic(handler: FakeHandler, policy: AuthPolicy) -> bool:
    header = handler.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            login, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            login, password = "", ""
        if hmac.compare_digest(login, policy.login) and hmac.compare_digest(
            password, policy.password
        ):
            return True
    _challenge(handler, 'Basic realm="fake"')
    return False


def check_bearer(handler: FakeHandler, policy: AuthPolicy) -> bool:
    header = handler.headers.get("Authorization", "")
    claims = tokens.verify(header[7:]) if header.startswith("Bearer ") else None
    if claims is not None and (not policy.audience or claims.get("scope") == policy.audience):
        return True
    _challenge(handler, 'Bearer error="invalid_token"')
    return False


CHECKS = {"basic": check_basic, "bearer": check_bearer}


def gate(handler: FakeHandler, policy: AuthPolicy | None) -> bool:
    """True when the request may proceed; otherwise the handler has answered already."""
    if policy is None or policy.scheme == "none":
        return True
    return CHECKS[policy.scheme](handler, policy)
