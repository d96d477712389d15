"""The fake's outgoing calls: subscription validation and change/lifecycle notifications.

Targets are the app under test, often plain http on 127.0.0.1; https targets are trusted
through the test CA's file (GraphState.ca_file) plus the system's CAs.
"""

from __future__ import annotations

import ssl
import uuid
from typing import Any
from urllib.parse import quote

import httpx

TIMEOUT_S = 10.0  # Graph waits about 10 s for the validation answer


def _verify(ca_file: str) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def validation_token() -> str:
    """Shaped like Graph's: spaces and colons, so a receiver must URL-decode it."""
    return (
        "Validation: Testing client application reachability for subscription "
        f"Request-Id: {uuid.uuid4()}"
    )


def validate(url: str, ca_file: str) -> tuple[bool, str]:
    """POST `url?validationToken=…` (text/plain, empty body); ok when 200 echoes the token."""
    token = validation_token()
    target = f"{url}{'&' if '?' in url else '?'}validationToken={quote(token, safe='')}"
    try:
        with httpx.Client(verify=_verify(ca_file), timeout=TIMEOUT_S) as client:
            answer = client.post(
                target, content=b"", headers={"Content-Type": "text/plain; charset=utf-8"}
            )
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if answer.status_code != 200:
        return False, f"HTTP {answer.status_code}"
    if answer.text != token:
        return False, "the answer's body is not the validation token"
    return True, ""


def post_json(url: str, payload: dict[str, Any], ca_file: str) -> int | str:
    """POST a notification; the status code, or the error's text when none came back."""
    try:
        with httpx.Client(verify=_verify(ca_file), timeout=TIMEOUT_S) as client:
            return client.post(url, json=payload).status_code
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
