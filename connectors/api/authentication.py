"""API-client authentication: `Authorization: Bearer <key>` or `X-API-KEY: <key>`.

A request without either header is left to the next authenticator (or answered 401); a key that
is malformed, unknown or belongs to an inactive client is refused with 401 at once.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from connectors.models import ApiClient
from connectors.services import api_client_for_key

# Keys are "dc_" + URL-safe base64; anything else cannot match, so it never reaches the database.
KEY_SHAPE = re.compile(r"[A-Za-z0-9_\-]{16,200}")


class ApiClientUser:
    """`request.user` of a request authenticated by an API key (`request.auth` is the client)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def __str__(self) -> str:
        return f"API client {self.client.name}"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False  # a client's rights are its source apps, never Django permissions


def key_from_headers(request: Request) -> str | None:
    """The key sent as `X-API-KEY` or as a Bearer token, or None when neither header is sent."""
    header = request.META.get("HTTP_X_API_KEY")
    if header is not None:
        return str(header).strip()
    scheme, _, value = str(request.META.get("HTTP_AUTHORIZATION", "")).partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiClientUser, ApiClient] | None:
        key = key_from_headers(request)
        if key is None:
            return None
        client = api_client_for_key(key) if KEY_SHAPE.fullmatch(key) else None
        if client is None:
            raise exceptions.AuthenticationFailed("Invalid API key, or its client is inactive.")
        return ApiClientUser(client), client

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="api"'


def client_of(request: Request) -> ApiClient | None:
    """The API client a request was authenticated as, or None (a session user or nobody)."""
    return request.auth if isinstance(request.auth, ApiClient) else None
