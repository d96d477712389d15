"""What the dispatch log pages show, redacted: list rows, the detail, the action URIs.

Stored attempts and errors are redacted when written (connectors/backoffices/redact.py); the
pages redact them once more with the connector's Redactor before showing them, so a secret
that slipped into a stored text (a body, an excerpt, a message) still never reaches a page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.urls import reverse

from connectors.action_uris import RenderedActionUri, action_uris_for
from connectors.backoffices.redact import Redactor, redactor_for
from connectors.models import (
    OPEN_STATUSES,
    RETRYABLE_STATUSES,
    Appointment,
    Attempt,
    Dispatch,
    DispatchStatus,
)
from exchange_sync.models import SyncLogEntry

from . import selectors
from .curl import Curl, latest_curl

# Badge classes of connectors/admin.css, per dispatch status.
STATUS_CLASSES: dict[str, str] = {
    DispatchStatus.PENDING: "dc-unknown",
    DispatchStatus.SENDING: "dc-unknown",
    DispatchStatus.RETRYING: "dc-unknown",
    DispatchStatus.SUCCEEDED: "dc-ok",
    DispatchStatus.FAILED: "dc-fail",
    DispatchStatus.CANCELLED: "dc-off",
}


def status_class(status: str) -> str:
    return STATUS_CLASSES.get(status, "dc-unknown")


@dataclass
class Row:
    dispatch: Dispatch
    status_class: str
    last_error: str


def rows(page: Iterable[Dispatch]) -> list[Row]:
    """List rows; last errors redacted with their connector's secrets (one query)."""
    items = list(page)
    connectors = selectors.connectors_by_id({d.connector_id for d in items})
    redactors = {pk: redactor_for(connector) for pk, connector in connectors.items()}
    return [
        Row(d, status_class(d.status), redactors[d.connector_id].text(d.last_error)
            if d.connector_id in redactors else d.last_error)
        for d in items
    ]


@dataclass
class AttemptView:
    attempt: Attempt
    message: str
    hint: str
    response_excerpt: str


@dataclass
class Detail:
    dispatch: Dispatch
    status_class: str
    payload_json: str
    last_error: str
    last_hint: str
    attempts: list[AttemptView]
    curl: Curl | None
    others: list[tuple[Dispatch, str]]
    waiting_for: list[Dispatch]
    can_retry: bool
    resource_nos: list[str]
    action_uris: list[ActionUri] = field(default_factory=list)
    quarantined_at: datetime | None = field(default=None)
    sync_log: list[SyncLogEntry] = field(default_factory=list)


def detail(dispatch: Dispatch, *, may_retry: bool) -> Detail:
    """Everything the detail page shows (three queries, the action URIs' own, and one more for
    the Exchange sync log when the appointment has one)."""
    redactor = redactor_for(dispatch.connector)
    attempts = selectors.attempts(dispatch)
    others = selectors.other_dispatches(dispatch)
    return Detail(
        dispatch=dispatch,
        status_class=status_class(dispatch.status),
        payload_json=pretty_json(dispatch.payload, redactor),
        last_error=redactor.text(dispatch.last_error),
        last_hint=redactor.text(dispatch.last_hint),
        attempts=[attempt_view(attempt, redactor) for attempt in attempts],
        curl=latest_curl(attempts, redactor),
        others=[(other, status_class(other.status)) for other in others],
        waiting_for=[
            other for other in others
            if other.connector_id == dispatch.connector_id and other.pk < dispatch.pk
            and other.status in OPEN_STATUSES
        ] if dispatch.status in (DispatchStatus.PENDING, DispatchStatus.RETRYING) else [],
        can_retry=may_retry and dispatch.status in RETRYABLE_STATUSES,
        resource_nos=resource_nos(dispatch.appointment.data),
        action_uris=action_uris(dispatch.appointment, action=dispatch.action),
        quarantined_at=dispatch.connector.quarantined_at,
        sync_log=selectors.sync_log(dispatch),
    )


def resource_nos(data: Any) -> list[str]:
    """The resource nos of the appointment's current state."""
    resources = data.get("resources") if isinstance(data, Mapping) else None
    return [
        str(r["resource_no"]) for r in resources or []
        if isinstance(r, Mapping) and r.get("resource_no")
    ]


def pretty_json(value: Any, redactor: Redactor) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return redactor.text(text)


def attempt_view(attempt: Attempt, redactor: Redactor) -> AttemptView:
    return AttemptView(
        attempt=attempt,
        message=redactor.text(attempt.message),
        hint=redactor.text(attempt.hint),
        response_excerpt=redactor.text(attempt.response_excerpt),
    )


# --- Action URIs (connectors.action_uris) -----------------------------------------------------


@dataclass(frozen=True)
class ActionUri:
    url: str
    description: str
    kind: str = ""  # planning board, appointment, task, map
    method: str = "GET"
    form_fields: tuple[tuple[str, str], ...] = ()  # a POST's body fields
    open_url: str = ""  # for a POST: the admin's page that sends the form (docs/ACTION_URIS.md)

    @property
    def linkable(self) -> bool:
        """Only http(s) addresses become links (a template could render `javascript:…`)."""
        return urlsplit(self.url).scheme in ("http", "https")


def action_uris(appointment: Appointment, *, action: str) -> list[ActionUri]:
    """The appointment's action URIs rendered for this change (`action` fills
    #DATABASEACTION#)."""
    return [_action_uri(item, appointment, action)
            for item in action_uris_for(appointment, action=action)]


def _action_uri(
    item: RenderedActionUri, appointment: Appointment | None = None, action: str = ""
) -> ActionUri:
    return ActionUri(
        url=item.uri,
        description=item.description or item.uri,
        kind=item.url_type_label,
        method=item.request_type.upper(),
        form_fields=tuple(item.form_fields.items()),
        open_url=_open_url(item.action_uri_id, appointment, action),
    )


def _open_url(action_uri_id: int | None, appointment: Appointment | None, action: str) -> str:
    """For a stored POST template: the admin page that sends its form. A preview (no stored
    template) has none, and the detail page sends the form itself."""
    if action_uri_id is None or appointment is None:
        return ""
    url = reverse("admin:connectors_actionuri_open", args=[action_uri_id, appointment.pk])
    return f"{url}?{urlencode({'action': action})}" if action else url
