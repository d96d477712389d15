"""Microsoft Graph failures as one error type, with a hint an administrator can act on.

Graph answers errors as `{"error": {"code", "message", "innerError": {"request-id", "date"}}}`
(https://learn.microsoft.com/graph/errors). Classification follows DESIGN.md: 4xx other than
408/429 are permanent (412 and 404 reach the callers that `accept` them as answers), 5xx, 408,
429, timeouts and connection errors are transient.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from connectors.backoffices.base import BackOfficeError
from connectors.backoffices.errors import retry_after_seconds, vendor_message
from connectors.backoffices.redact import Redactor

MESSAGE_LIMIT = 300
TRANSIENT_STATUSES = frozenset({408, 429})
# Codes Graph uses when a delta round's state is gone (Outlook: SyncStateNotFound; other
# workloads: syncStateNotFound / resyncRequired); compared case-insensitively.
SYNC_STATE_LOST = frozenset({"syncstatenotfound", "syncstateinvalid", "resyncrequired"})
MAILBOX_MISSING = frozenset({"errorinvaliduser", "mailboxnotenabledforrestapi", "resourcenotfound"})

CONSENT_HINT = (
    "The application has no Microsoft Graph permission for calendars: grant the application "
    "permission Calendars.ReadWrite (and User.Read.All) and admin consent in the Entra portal "
    "(App registrations → API permissions → Grant admin consent)."
)
STATUS_HINTS: dict[int, str] = {
    400: "Microsoft Graph refused the request: read its message.",
    404: "The item no longer exists in the mailbox (deleted in Outlook?).",
    409: "Microsoft Graph reports a conflict with the mailbox's current data.",
    412: "The event changed in Outlook since it was read (its change key differs); it was not "
    "overwritten.",
    429: "Microsoft Graph is throttling requests (Exchange Online allows about 10,000 requests "
    "per 10 minutes per application and mailbox); DimeConnect waits and retries.",
}


class GraphError(BackOfficeError):
    """A failed Graph call: `message` safe to show, `permanent`, `hint`, `status_code`, `code`
    (Graph's error code, e.g. "ErrorItemNotFound", "SyncStateNotFound"; "" when none) and
    `retry_after` (seconds, when Graph asked for a pause)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        hint: str = "",
        code: str = "",
        status_code: int | None = None,
        retry_after: float | None = None,
        response_excerpt: str = "",
        error_class: str = "",
    ) -> None:
        super().__init__(
            message,
            permanent=permanent,
            hint=hint,
            status_code=status_code,
            retry_after=retry_after,
            response_excerpt=response_excerpt,
            error_class=error_class or (f"HTTP{status_code}" if status_code else "GraphError"),
        )
        self.code = code

    @classmethod
    def from_backoffice(cls, error: BackOfficeError) -> GraphError:
        """The same failure (a token or network error from the seam) as a GraphError."""
        converted = cls(
            error.message,
            permanent=error.permanent,
            hint=error.hint,
            status_code=error.status_code,
            retry_after=error.retry_after,
            response_excerpt=error.response_excerpt,
            error_class=error.error_class,
        )
        converted.request = error.request
        return converted

    @property
    def sync_state_lost(self) -> bool:
        """True when a delta link is no longer valid: start a full round (Graph 410)."""
        return self.code.lower() in SYNC_STATE_LOST


def mailbox_in(path: str) -> str:
    """The `{x}` of a `/users/{x}/…` path or URL ("" when there is none)."""
    match = re.search(r"/users/([^/?#]+)", urlsplit(path).path, re.IGNORECASE)
    return unquote(match.group(1)) if match else ""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _request_id(body: str) -> str:
    try:
        data: Any = json.loads(body)
        inner = data["error"].get("innerError") or data["error"].get("innererror") or {}
        return str(inner.get("request-id") or "")
    except (ValueError, TypeError, KeyError, AttributeError):
        return ""


def hint_for(status: int, code: str, message: str, path: str) -> str:
    """What an administrator can do about this answer."""
    lowered, mailbox = code.lower(), mailbox_in(path)
    if status in (401, 403) and (
        "accesspolicy" in message.lower().replace(" ", "") or "raop" in message.lower()
    ):
        target = f"the mailbox {mailbox}" if mailbox else "this mailbox"
        return (
            f"Exchange Online blocks the application from {target}: an application access "
            "policy (New-ApplicationAccessPolicy) or RBAC for Applications management scope "
            f"restricts it. Add {mailbox or 'the mailbox'} to the policy's group or scope "
            "(check with Test-ApplicationAccessPolicy or Test-ServicePrincipalAuthorization)."
        )
    if status == 403 or lowered == "erroraccessdenied":
        return CONSENT_HINT
    if status == 401:
        return (
            "Microsoft Graph refused a freshly fetched token: check that the tenant ID is the "
            "mailboxes' tenant, that GRAPH_BASE_URL and ENTRA_AUTHORITY_HOST name the same "
            f"cloud, and consent: {CONSENT_HINT}"
        )
    if status == 404 and lowered in MAILBOX_MISSING and mailbox:
        return (
            f"Mailbox not found ({mailbox}): check the resource's mailbox email; the user needs "
            "an Exchange Online mailbox."
        )
    if lowered in SYNC_STATE_LOST:
        return "The delta sync state expired at Microsoft Graph; the next round reads in full."
    if status >= 500:
        return (
            "Microsoft Graph failed on its side; DimeConnect retries. If it persists, check the "
            "Microsoft 365 service health (the request-id helps Microsoft support)."
        )
    return STATUS_HINTS.get(status, "Read Microsoft Graph's message.")


def graph_error(
    status: int, headers: Mapping[str, str], body: str, *, path: str, redactor: Redactor
) -> GraphError:
    """The GraphError for a non-2xx answer to a request for `path` (call only for those)."""
    code, message = vendor_message(body)
    message = redactor.text(_short(message))
    request_id = _request_id(body)
    said = f": {code + ': ' if code else ''}{message}" if message or code else ""
    tail = f" (request-id {request_id})" if request_id else ""
    return GraphError(
        f"Microsoft Graph answered HTTP {status}{said}{tail}",
        permanent=not (status >= 500 or status in TRANSIENT_STATUSES),
        hint=hint_for(status, code, message, path),
        code=code,
        status_code=status,
        retry_after=retry_after_seconds(headers),
        response_excerpt=redactor.excerpt(body),
    )
