"""Getting an access token: Microsoft Entra ID through msal, OAuth2 client credentials through
httpx (RFC 6749 §4.4). No caching here: `cache.fetch_token` decides when to ask.

Both go through the HTTP seam (timeouts, HTTP_CA_BUNDLE, errors → BackOfficeError). Answers of
400/401 from a token endpoint are permanent (a wrong secret, tenant or client does not heal by
retrying); Entra's AADSTS codes pick the hint.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlsplit

import msal
import requests
from django.conf import settings

from connectors.compat import AuthType, ConnectorType

from .. import http
from ..base import BackOfficeError
from ..errors import (
    AADSTS_HINTS,
    aadsts_codes,
    entra_hint,
    error_for_exception,
    error_for_status,
)
from ..redact import Redactor, redactor_for

if TYPE_CHECKING:
    from connectors.models import Connector

TOKEN_AUTH_TYPES = frozenset({AuthType.ENTRA_ID, AuthType.OAUTH2_BASIC, AuthType.OAUTH2_POST})
BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"
# Authority hosts msal knows as Microsoft clouds; any other host (a fake, a private gateway)
# is taken as given (validate_authority=False).
ENTRA_CLOUD_HOSTS = frozenset({
    "login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
})
TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")  # a GUID or a verified domain
# RFC 6749 §5.1 makes expires_in optional; without it a token is kept this long (a 401 still
# fetches a new one).
DEFAULT_TOKEN_LIFETIME_S = 3600.0
ENTRA = "Microsoft Entra ID"


@dataclass
class TokenInfo:
    access_token: str = field(repr=False)  # never shown, not even in a traceback's locals
    expires_at: float  # epoch seconds
    token_type: str = "Bearer"


def has_token(connector: Connector) -> bool:
    """True for the auth types that send an access token (Entra ID, OAuth2)."""
    return connector.auth_type in TOKEN_AUTH_TYPES


def default_scope(connector: Connector) -> str:
    """The scope to ask a token for: the connector's own (whitespace normalised), else per type.

    Business Central (either kind, any token auth type; BC only trusts Entra tokens): the BC
    API's `/.default`. A webhook with Entra ID must name its receiver's scope (raises a permanent
    BackOfficeError saying so): there is no receiver every webhook shares. A webhook with OAuth2:
    "" (the scope is optional there, RFC 6749 §3.3, and is left out of the request).
    """
    scope = " ".join(connector.scope.split())
    if scope or not has_token(connector):
        return scope
    if connector.type in (ConnectorType.BC_ONPREM, ConnectorType.BC_ONLINE):
        return BC_SCOPE
    if connector.auth_type == AuthType.ENTRA_ID:
        raise BackOfficeError(
            "A webhook connector with Microsoft Entra ID authentication needs a scope.",
            permanent=True,
            hint="Enter the receiving API's Application ID URI followed by /.default "
            "(e.g. api://<its application ID>/.default) in the connector's scope.",
            error_class="ConfigurationError",
        )
    return ""


def request_token(connector: Connector) -> TokenInfo:
    """Ask the connector's identity provider for a new token; raises BackOfficeError."""
    if connector.auth_type == AuthType.ENTRA_ID:
        return _entra_token(connector)
    return _oauth2_token(connector)


def _token_from(payload: Any, what: str) -> TokenInfo:
    """RFC 6749 §5.1: access_token, token_type (Bearer, RFC 6750), expires_in."""
    token = payload.get("access_token") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token:
        raise BackOfficeError(
            f"{what} answered without an access token.",
            permanent=True,
            hint="Check that the authorization server URL is the OAuth2 token endpoint.",
            error_class="TokenError",
        )
    token_type = str(payload.get("token_type") or "Bearer")
    if token_type.lower() != "bearer":
        raise BackOfficeError(
            f"{what} issued a {token_type[:40]} token; DimeConnect sends Bearer tokens only.",
            permanent=True,
            error_class="TokenError",
        )
    try:
        lifetime = float(payload.get("expires_in", DEFAULT_TOKEN_LIFETIME_S))
    except (TypeError, ValueError):
        lifetime = DEFAULT_TOKEN_LIFETIME_S
    return TokenInfo(token, time.time() + lifetime)


def _token_error(
    connector: Connector, answer: http.HttpAnswer, redactor: Redactor, what: str
) -> BackOfficeError:
    """The error for a token or discovery endpoint's non-2xx answer (400/401: permanent)."""
    error = error_for_status(
        answer.status_code, answer.headers, answer.text, redactor=redactor, what=what
    )
    error.error_class = "TokenError"
    try:
        codes = [int(code) for code in answer.json().get("error_codes") or []]
    except (ValueError, TypeError, AttributeError):
        codes = []
    if codes or aadsts_codes(error.message):
        error.hint = entra_hint(error.message, codes)
    elif answer.status_code in (400, 401) and connector.auth_type != AuthType.ENTRA_ID:
        error.hint = (
            "The authorization server refused the client: check the client ID and secret, "
            "the scope, and that the server accepts this client authentication method "
            f"({AuthType(connector.auth_type).label})."
        )
    elif answer.status_code in (400, 401, 404):
        error.hint = (
            "Check the tenant ID, client ID and client secret, and that ENTRA_AUTHORITY_HOST "
            f"({settings.ENTRA_AUTHORITY_HOST}) is the Entra ID login address."
        )
    return error


# -- Microsoft Entra ID (msal) --------------------------------------------------------------


class _SeamHttpClient:
    """msal's `http_client`: each call goes through the seam (TLS trust with HTTP_CA_BUNDLE,
    library errors → BackOfficeError) under one deadline for the whole fetch (discovery and
    token). msal ignores its own `timeout` when given an http_client (msal/application.py), so
    the timeout lives here. `last` keeps the latest answer, whose body says why msal failed."""

    def __init__(self, connector: Connector, redactor: Redactor) -> None:
        self._connector = connector
        self._redactor = redactor
        self._session = http.requests_session(connector)
        self._timeout = http.total_timeout(connector)
        self._deadline = time.monotonic() + self._timeout
        self.last: http.HttpAnswer | None = None

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self._call("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._call("POST", url, **kwargs)

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise error_for_exception(
                http.DeadlineExceeded(), url=url, timeout_s=self._timeout, redactor=self._redactor
            )
        kwargs["timeout"] = (min(http.CONNECT_TIMEOUT_S, remaining), remaining)
        response, self.last = http.requests_call(
            self._session, method, url, connector=self._connector, redactor=self._redactor,
            **kwargs,
        )
        return response


def _entra_authority(connector: Connector) -> tuple[str, bool]:
    """(authority URL, validate_authority) from ENTRA_AUTHORITY_HOST and the tenant ID."""
    host = settings.ENTRA_AUTHORITY_HOST.rstrip("/")
    if urlsplit(host).scheme != "https":
        raise BackOfficeError(
            f"ENTRA_AUTHORITY_HOST ({host}) is not an https URL.",
            permanent=True,
            hint="Set ENTRA_AUTHORITY_HOST to https://login.microsoftonline.com (or your "
            "national cloud's login address).",
            error_class="ConfigurationError",
        )
    tenant = connector.tenant_id.strip()
    if not TENANT_ID.fullmatch(tenant):
        raise BackOfficeError(
            "The tenant ID is not a GUID or domain name.",
            permanent=True,
            hint=AADSTS_HINTS[900023],
            error_class="ConfigurationError",
        )
    return f"{host}/{tenant}", urlsplit(host).hostname in ENTRA_CLOUD_HOSTS


def _entra_token(connector: Connector) -> TokenInfo:
    authority, validate = _entra_authority(connector)
    scopes = default_scope(connector).split()
    redactor = redactor_for(connector)
    client = _SeamHttpClient(connector, redactor)
    try:
        # A new app per fetch: our cache decides when to fetch, so neither msal's own token
        # cache nor its 60-second replay of HTTP 400 answers may (msal/throttled_http_client.py).
        app = msal.ConfidentialClientApplication(
            connector.client_id,
            client_credential=connector.client_secret,
            authority=authority,
            validate_authority=validate,
            instance_discovery=False,  # only the tenant's openid-configuration, then the token
            http_client=client,
        )
        result = app.acquire_token_for_client(scopes=scopes)
    except BackOfficeError:
        raise
    except Exception as exc:  # msal raises ValueError & co.; the last answer says why
        if client.last is not None and client.last.status_code >= 400:
            raise _token_error(connector, client.last, redactor, ENTRA) from None
        raise BackOfficeError(
            f"{ENTRA} gave an answer DimeConnect cannot use: "
            f"{redactor.text(str(exc))[:300] or type(exc).__name__}",
            permanent=False,
            hint=f"Check that ENTRA_AUTHORITY_HOST ({settings.ENTRA_AUTHORITY_HOST}) is the "
            "Entra ID login address and the tenant ID is right.",
            error_class="TokenError",
        ) from None
    finally:
        client.close()
    if "access_token" in result:
        return _token_from(result, ENTRA)
    if client.last is not None and client.last.status_code >= 400:
        raise _token_error(connector, client.last, redactor, ENTRA)
    description = redactor.text(str(result.get("error_description") or ""))
    raise BackOfficeError(  # an msal error dict that no HTTP error answer explains
        f"{ENTRA} refused the token request: {result.get('error')}: {description[:300]}",
        permanent=True,
        hint=entra_hint(description, list(result.get("error_codes") or [])),
        error_class="TokenError",
    )


# -- OAuth2 client credentials (httpx) ------------------------------------------------------


def client_secret_basic(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded *before* Basic's base64 (RFC 7617)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


def _require_tls(url: str) -> None:
    """RFC 6749 §3.2: the token endpoint MUST use TLS (loopback excepted, for local setups)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or parts.hostname in ("127.0.0.1", "::1", "localhost"):
        return
    raise BackOfficeError(
        "The authorization server URL does not use https; the client secret would travel "
        "in clear text.",
        permanent=True,
        hint="Use the https address of the OAuth2 token endpoint.",
        error_class="ConfigurationError",
    )


def _oauth2_token(connector: Connector) -> TokenInfo:
    url = connector.token_url.strip()
    _require_tls(url)
    form = {"grant_type": "client_credentials"}
    if scope := default_scope(connector):
        form["scope"] = scope
    headers = {"Accept": "application/json"}
    if connector.auth_type == AuthType.OAUTH2_BASIC:
        headers["Authorization"] = client_secret_basic(
            connector.client_id, connector.client_secret
        )
    else:  # client_secret_post (RFC 6749 §2.3.1: "NOT RECOMMENDED", yet some servers need it)
        form.update(client_id=connector.client_id, client_secret=connector.client_secret)
    redactor = redactor_for(connector)
    what = f"The authorization server {urlsplit(url).hostname}"
    with http.httpx_client(connector) as client:
        answer = http.httpx_request(
            client, "POST", url, connector=connector, redactor=redactor, data=form,
            headers=headers,
        )
    if answer.status_code != 200:
        raise _token_error(connector, answer, redactor, what)
    try:
        payload = answer.json()
    except ValueError:
        payload = None
    return _token_from(payload, what)
