"""Authentication for back-office calls: every auth type of DESIGN.md's Connector table.

Public contract (the clients code against these names):
- `credentials(connector)`: login and password, or the service account.
- `has_token`, `default_scope`, `TokenInfo`, `fetch_token(connector, force=False)`: access
  tokens (Entra ID through msal, OAuth2 client credentials through httpx), cached in process
  memory until shortly before they expire (`tokens.py`, `cache.py`).
- `httpx_auth(connector)` (REST: webhook, Business Central REST) and `requests_auth(connector)`
  (zeep: SOAP): the library's auth object, or None. Both bearer auths fetch a new token once
  when the back office answers 401, then leave the 401 to the caller.
Every failure is a BackOfficeError; no secret or token goes into a message or log line.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import httpx
import requests
from django.conf import settings
from requests.auth import AuthBase, HTTPBasicAuth
from requests_ntlm import HttpNtlmAuth

from connectors.compat import SOAP_ONLY_AUTH_TYPES, AuthType

from ..base import BackOfficeError
from .cache import clear_token_cache, fetch_token
from .negotiate import NegotiateAuth, release
from .tokens import BC_SCOPE, TOKEN_AUTH_TYPES, TokenInfo, default_scope, has_token

if TYPE_CHECKING:
    from connectors.models import Connector

__all__ = [
    "BC_SCOPE", "BearerAuth", "NegotiateAuth", "RequestsBearerAuth", "TokenInfo",
    "clear_token_cache", "credentials", "default_scope", "fetch_token", "has_token",
    "httpx_auth", "requests_auth", "unauthorized_hint",
]

logger = logging.getLogger(__name__)


def credentials(connector: Connector) -> tuple[str, str]:
    """(login, password): the connector's own, or the service account (BACKOFFICE_SERVICE_LOGIN
    / _PASSWORD) for auth type `none` or when the connector's login and password are blank."""
    if connector.auth_type == AuthType.NONE or not (connector.login or connector.password):
        return settings.BACKOFFICE_SERVICE_LOGIN, settings.BACKOFFICE_SERVICE_PASSWORD
    return connector.login, connector.password


def _bearer(connector: Connector, *, force: bool = False) -> str:
    return f"Bearer {fetch_token(connector, force=force).access_token}"


class BearerAuth(httpx.Auth):
    """`Authorization: Bearer …`; on a 401 fetches a new token once and resends."""

    requires_request_body = True  # the body is sent twice when the first token is refused

    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = _bearer(self.connector)
        response = yield request
        if response.status_code == 401:
            logger.info("Connector %s: token refused, fetching a new one", self.connector.name)
            request.headers["Authorization"] = _bearer(self.connector, force=True)
            yield request


class RequestsBearerAuth(AuthBase):
    """The same for requests (zeep): a response hook resends once with a new token on 401."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = _bearer(self.connector)
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401:
            return response
        logger.info("Connector %s: token refused, fetching a new one", self.connector.name)
        release(response)
        request = response.request.copy()
        request.headers["Authorization"] = _bearer(self.connector, force=True)
        # the adapter, not the session, sends: it runs no hooks, so this is the only retry
        retried: requests.Response = response.connection.send(request, **kwargs)
        retried.history.append(response)
        return retried


def _login_or_fail(connector: Connector) -> tuple[str, str]:
    login, password = credentials(connector)
    if not login:
        raise BackOfficeError(
            f"{AuthType(connector.auth_type).label} authentication needs a login.",
            permanent=True,
            hint="Enter the login and password, or set BACKOFFICE_SERVICE_LOGIN and "
            "BACKOFFICE_SERVICE_PASSWORD for the service account.",
            error_class="ConfigurationError",
        )
    return login, password


def httpx_auth(connector: Connector) -> httpx.Auth | None:
    """The httpx auth for a REST connector; None for `none` without a service account.

    Raises a permanent BackOfficeError for NTLM and Windows, which work only with SOAP.
    """
    if connector.auth_type in SOAP_ONLY_AUTH_TYPES:
        raise BackOfficeError(
            f"{AuthType(connector.auth_type).label} authentication works only with the SOAP "
            "API type.",
            permanent=True,
            hint="Choose SOAP as API type, or Basic, Entra ID or OAuth2 authentication.",
            error_class="ConfigurationError",
        )
    if has_token(connector):
        return BearerAuth(connector)
    if connector.auth_type == AuthType.NONE and not settings.BACKOFFICE_SERVICE_LOGIN:
        return None
    return httpx.BasicAuth(*_login_or_fail(connector))


def requests_auth(connector: Connector) -> AuthBase | None:
    """The requests auth (for zeep) for any auth type; None for `none` without a service
    account. NTLM: requests-ntlm (the login may be DOMAIN\\user); Windows: NegotiateAuth."""
    if has_token(connector):
        return RequestsBearerAuth(connector)
    if connector.auth_type == AuthType.NONE and not settings.BACKOFFICE_SERVICE_LOGIN:
        return None
    login, password = _login_or_fail(connector)
    if connector.auth_type == AuthType.NTLM:
        return HttpNtlmAuth(login, password)
    if connector.auth_type == AuthType.WINDOWS:
        return NegotiateAuth(login, password)
    # UTF-8 like httpx.BasicAuth and RFC 7617's charset="UTF-8" (requests alone uses Latin-1)
    return HTTPBasicAuth(login.encode(), password.encode())


def unauthorized_hint(connector: Connector) -> str:
    """What to check when the back office answers 401 to this connector's credentials."""
    kind = connector.auth_type
    if kind in TOKEN_AUTH_TYPES:
        return (
            "The back office refused a freshly fetched token: check the scope "
            f"({connector.scope or 'the default'}) and that the application is allowed there "
            "(in Business Central: on the Microsoft Entra Applications page, with permission "
            "sets)."
        )
    if kind in SOAP_ONLY_AUTH_TYPES:
        return (
            "The Windows account was refused: check the login (DOMAIN\\user) and password, and "
            "that the account is a Business Central user with Windows credentials."
        )
    return (
        "The back office did not accept the login and password (for auth type none: the "
        "service account BACKOFFICE_SERVICE_LOGIN / BACKOFFICE_SERVICE_PASSWORD)."
    )
