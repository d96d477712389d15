"""Turning failures into BackOfficeError: permanent or transient, the vendor's own message,
and a hint an administrator can act on.

Classification (DESIGN.md, Write-back): 3xx, 4xx other than 408/425/429, 412 and SOAP Client
faults are permanent; 5xx, 408/425/429, timeouts, connection errors and SOAP Server faults are
transient. Vendor messages come from OData/Business Central error JSON
(`{"error": {"code", "message"}}`), Entra ID token errors (`error`, `error_description`,
`error_codes`) and SOAP faults (`faultstring`).
"""

from __future__ import annotations

import email.utils
import json
import re
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import requests

from .base import BackOfficeError
from .redact import Redactor

MESSAGE_LIMIT = 300

TRANSIENT_STATUSES = frozenset({408, 425, 429})

STATUS_HINTS: dict[int, str] = {
    400: "The back office refused the data: read its message; check the field mapping and "
    "that the record's values are allowed there.",
    401: "The back office did not accept the credentials: check the login and password (or "
    "the client ID and secret), and that the account is enabled.",
    403: "The account is known but not allowed: in Business Central give the user or the "
    "Entra application the permission sets it needs (e.g. D365 BASIC ISV and the "
    "Dime.Scheduler set) in the right company.",
    404: "Nothing answers at this URI: check the web service URI, the company and that the "
    "page or API is published.",
    405: "The URI does not accept this method: check that it points at the page web service "
    "or API entity set, not at a single record.",
    409: "The back office reports a conflict with its current data: read its message.",
    412: "The record changed in the back office since it was read (concurrency): it will not "
    "be overwritten; look at the record there.",
    413: "The back office refused the size of the request.",
    415: "The back office does not accept this content type: check the API type "
    "(SOAP or REST).",
    429: "The back office is throttling requests; DimeConnect waits and retries.",
}

# Business Central / OData error codes (`{"error": {"code": …}}`) whose fix is more specific than
# their status's. Codes as Business Central sends them (see the shared fixtures).
VENDOR_CODE_HINTS: dict[str, str] = {
    "BadRequest_NotFound": "Business Central has nothing at this URI: check the company id in "
    "companies(…), and that the Dime.Scheduler API extension is installed and published (the "
    "URI ends in …/api/dimeSoftware/dimeScheduler/v1.0/companies(<company id>)/appointments).",
    "BadRequest_MethodNotAllowed": "Business Central does not allow this method here: check that "
    "the URI is the API entity set (…/companies(<company id>)/appointments), not one record.",
}

# Entra ID (AADSTS) error codes an administrator can fix, and how.
AADSTS_HINTS: dict[int, str] = {
    7000215: "The client secret is wrong: copy the secret's Value (not its ID) from the app "
    "registration's Certificates & secrets.",
    7000222: "The client secret has expired: create a new one in the app registration and "
    "enter it here.",
    700016: "No application with this client ID exists in the tenant: check the client ID "
    "and the tenant ID.",
    90002: "The tenant does not exist: check the tenant ID (the directory ID of the Entra "
    "tenant).",
    900023: "The tenant ID is not a valid GUID or domain: check it.",
    65001: "Admin consent is missing: grant admin consent for the app's API permissions in "
    "the Entra portal.",
    500011: "The resource (scope) is not known in the tenant: check the scope, or that the "
    "service principal of the API exists (admin consent).",
    1002012: "The scope is not valid for the client credentials flow: it must end in /.default.",
    70011: "The scope is not valid: use the API's /.default scope.",
    7000112: "The application is disabled in the tenant.",
    50126: "Invalid user name or password.",
}


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """The Retry-After header in seconds (delta or HTTP date), or None."""
    value = {k.lower(): v for k, v in headers.items()}.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def vendor_message(body: str) -> tuple[str, str]:
    """(code, message) the vendor put in the body: OData, Entra or SOAP; else ("", text)."""
    stripped = body.strip()
    if stripped.startswith("{"):
        try:
            data: Any = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict):  # OData / Business Central / Graph
                return str(error.get("code", "")), str(error.get("message", ""))
            if isinstance(error, str):  # OAuth2 / Entra ID token endpoint
                return error, str(data.get("error_description") or error)
            for key in ("message", "detail", "title"):
                if isinstance(data.get(key), str):
                    return "", data[key]
    fault = re.search(r"<(?:\w+:)?faultstring[^>]*>(.*?)</(?:\w+:)?faultstring>", body, re.S)
    if fault:
        code = re.search(r"<(?:\w+:)?faultcode[^>]*>(.*?)</(?:\w+:)?faultcode>", body, re.S)
        return (code.group(1).strip() if code else ""), fault.group(1).strip()
    return "", re.sub(r"<[^>]+>", " ", stripped)[:MESSAGE_LIMIT] if stripped else ""


def aadsts_codes(text: str) -> list[int]:
    return [int(code) for code in re.findall(r"AADSTS(\d+)", text)]


def entra_hint(description: str, codes: list[int] | None = None) -> str:
    """The fix for the first known AADSTS code, or a general one."""
    for code in list(codes or []) + aadsts_codes(description):
        if code in AADSTS_HINTS:
            return AADSTS_HINTS[code]
    return (
        "Check the tenant ID, client ID and client secret, and that admin consent was granted "
        "for the app's API permissions."
    )


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    body: str,
    *,
    redactor: Redactor,
    what: str = "The back office",
) -> BackOfficeError:
    """The error for a non-2xx answer (call only for those)."""
    code, message = vendor_message(body)
    message = redactor.text(_short(message))
    said = f": {code + ': ' if code else ''}{message}" if message else ""
    permanent = not (status >= 500 or status in TRANSIENT_STATUSES)
    if 300 <= status < 400:
        location = headers.get("location") or headers.get("Location") or ""
        hint = (
            f"The URI redirects{' to ' + redactor.text(location) if location else ''}: "
            "put the final address in the connector's web service URI."
        )
    elif aadsts_codes(message) or code in {"invalid_client", "unauthorized_client",
                                           "invalid_tenant", "invalid_scope"}:
        hint = entra_hint(message)
    elif code in VENDOR_CODE_HINTS:
        hint = VENDOR_CODE_HINTS[code]
    elif status >= 500:
        hint = (
            "The back office failed on its side; DimeConnect retries. If it persists, look at "
            "the back office's own log (the correlation ID in the message helps)."
        )
    else:
        hint = STATUS_HINTS.get(status, "Read the back office's message.")
    return BackOfficeError(
        f"{what} answered HTTP {status}{said}",
        permanent=permanent,
        hint=hint,
        error_class=f"HTTP{status}",
        status_code=status,
        retry_after=retry_after_seconds(headers),
        response_excerpt=redactor.excerpt(body),
    )


def _tls_hint(text: str) -> str:
    lowered = text.lower()
    if "expired" in lowered:
        return "The server's TLS certificate has expired: renew it on the server."
    if "hostname" in lowered or "ip address mismatch" in lowered or "doesn't match" in lowered:
        return (
            "The server's certificate does not name this host: use the host name the "
            "certificate was issued for in the URI, or reissue the certificate."
        )
    if "self-signed" in lowered or "self signed" in lowered or "issuer" in lowered:
        return (
            "The certificate is signed by a CA DimeConnect does not trust: add that CA to the "
            "PEM file named by HTTP_CA_BUNDLE."
        )
    return "The TLS handshake failed: check the server's certificate and TLS settings."


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes. requests and urllib3 also wrap the real error as their
    first argument (e.g. ConnectionError(MaxRetryError(…, reason=SSLError))), so those count."""
    chain: list[BaseException] = []
    pending: list[object] = [exc]
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or current in chain:
            continue  # None, or a `reason` that is only text (ssl.SSLError's)
        chain.append(current)
        wrapped = [arg for arg in current.args if isinstance(arg, BaseException)]
        pending.extend([current.__cause__ or current.__context__, *wrapped,
                        getattr(current, "reason", None)])
    return chain


def error_for_exception(
    exc: BaseException, *, url: str, timeout_s: float, redactor: Redactor
) -> BackOfficeError:
    """The error for a request that got no complete answer. Always transient: the network,
    the server or its certificate may be fixed without changing the connector."""
    host = httpx.URL(url).host if url else ""
    chain = _chain(exc)
    text = redactor.text(" | ".join(str(e) for e in chain if str(e)))
    from .http import DeadlineExceeded

    if any(isinstance(e, httpx.TimeoutException | requests.Timeout | DeadlineExceeded
                      | TimeoutError) for e in chain):
        return BackOfficeError(
            f"No answer from {host} within {timeout_s:g} s.",
            permanent=False,
            hint="Check that the back office is running and the network path to it (firewall, "
            "proxy, VPN); raise the connector's timeout if it is only slow.",
            error_class="Timeout",
        )
    if any(isinstance(e, ssl.SSLError | requests.exceptions.SSLError) for e in chain) or (
        "certificate" in text.lower() or "ssl" in text.lower()
    ):
        return BackOfficeError(
            f"TLS with {host} failed: {_short(text)}",
            permanent=False,
            hint=_tls_hint(text),
            error_class="TLSError",
        )
    lowered = text.lower()
    if "name or service not known" in lowered or "nodename nor servname" in lowered or (
        "temporary failure in name resolution" in lowered or "getaddrinfo" in lowered
    ):
        return BackOfficeError(
            f"The host name {host} cannot be resolved.",
            permanent=False,
            hint="Check the host name in the URI and DNS from the DimeConnect machine.",
            error_class="DNSError",
        )
    if any(isinstance(e, httpx.ConnectError | requests.ConnectionError | ConnectionError)
           for e in chain):
        return BackOfficeError(
            f"Cannot connect to {host}: {_short(text)}",
            permanent=False,
            hint="Check the URI's host and port, that the service is running, and that a "
            "firewall lets DimeConnect reach it.",
            error_class="ConnectionError",
        )
    return BackOfficeError(
        f"The request to {host} failed: {_short(text) or type(exc).__name__}",
        permanent=False,
        hint="Retrying; if it persists, check the back office and the network path to it.",
        error_class=type(exc).__name__,
    )
