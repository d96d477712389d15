"""The interface every back-office client implements, and the one error type they raise."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.models import Connector


@dataclass(frozen=True)
class AppointmentChange:
    """One change to write back.

    `appointment` is the appointment as the event API carries it (DESIGN.md, API: `guid`,
    `source_app`, `job_no`, `resources`, `start`, …). `dispatch_id` is stable across retries, so
    a receiver can drop duplicates (delivery is at least once).
    """

    action: str  # create | update | delete
    dispatch_id: str
    occurred_at: datetime
    appointment: Mapping[str, Any]


@dataclass
class SendResult:
    """What a successful send got back."""

    status_code: int | None
    response_excerpt: str = ""
    duration_ms: int = 0
    request: RequestRecord | None = None


@dataclass
class RequestRecord:
    """What was sent, with secrets already redacted (for the dispatch log and "copy as cURL")."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


class BackOfficeError(Exception):
    """A failed call, described for an administrator.

    `message` is safe to show (never a secret), `permanent` says whether retrying can help,
    `hint` says what to do about it. `retry_after` (seconds) is the remote's own wish, when it
    said one; `status_code` and `response_excerpt` (redacted) are kept for the log, and so is
    `request` (redacted), what was sent, when a request went out (for "copy as cURL").
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        hint: str = "",
        error_class: str = "",
        status_code: int | None = None,
        retry_after: float | None = None,
        response_excerpt: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.hint = hint
        self.error_class = error_class or type(self).__name__
        self.status_code = status_code
        self.retry_after = retry_after
        self.response_excerpt = response_excerpt
        self.request: RequestRecord | None = None

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


@dataclass
class ProbeResult:
    """A side-effect-free check that the endpoint answers as this client expects."""

    detail: str
    status_code: int | None = None


class BackOfficeClient(abc.ABC):
    """A client for one connector. Build it with `registry.client_for(connector)`."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    @abc.abstractmethod
    def send(self, change: AppointmentChange) -> SendResult:
        """Write one change back; raises BackOfficeError."""

    @abc.abstractmethod
    def probe(self) -> ProbeResult:
        """Check, without writing business data, that the endpoint accepts this client;
        raises BackOfficeError."""
