""""Test connection": a step-by-step, timed check that a connector works, with a fix hint.

Steps (DESIGN.md, Test connection): resolve and connect (with the TLS certificate's expiry),
authenticate (when the auth type fetches a token), and a side-effect-free probe of the endpoint
(SOAP: the WSDL offers Create; BC REST: GET of the entity set; webhook: a signed
`connector.test` event). The whole test answers within the connector's timeout: each step gets
what is left of it.
"""

from __future__ import annotations

import copy
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import auth, http, registry
from .base import BackOfficeError
from .errors import error_for_exception
from .redact import Redactor, redactor_for

if TYPE_CHECKING:
    from connectors.models import Connector

CERT_WARNING_DAYS = 14


@dataclass
class Step:
    name: str
    ok: bool
    duration_ms: int
    detail: str
    hint: str = ""


@dataclass
class ConnectionTestResult:
    ok: bool
    tested_at: datetime
    steps: list[Step] = field(default_factory=list)
    message: str = ""
    hint: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tested_at"] = self.tested_at.isoformat()
        return data


class _Budget:
    """What is left of the connector's timeout, handed to each step as its own timeout."""

    def __init__(self, connector: Connector) -> None:
        self.total = http.total_timeout(connector)
        self.deadline = time.monotonic() + self.total

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def connector(self, connector: Connector) -> Connector:
        """An unsaved copy of the connector whose timeout is what is left (at least 1 s)."""
        limited = copy.copy(connector)
        limited.timeout_s = max(1, int(self.left()))
        return limited


StepAction = Callable[[], "Step | str"]


def timed_step(name: str, action: StepAction, redactor: Redactor) -> Step:
    """Run one step: a string it returns is a pass with that detail, a Step it returns is taken
    as it is (a pass with a warning as its hint), a BackOfficeError is a failure with its
    message and hint; everything shown is redacted."""
    started = time.monotonic()
    try:
        outcome = action()
    except BackOfficeError as exc:
        return Step(name, False, _ms(started), redactor.text(exc.message), redactor.text(exc.hint))
    if isinstance(outcome, Step):
        return Step(name, outcome.ok, _ms(started), redactor.text(outcome.detail),
                    redactor.text(outcome.hint))
    return Step(name, True, _ms(started), redactor.text(outcome))


def run_steps(result: ConnectionTestResult, steps: Sequence[tuple[str, StepAction]], *,
              left: Callable[[], float], total: float, redactor: Redactor,
              timeout_hint: str) -> bool:
    """Run the steps in order into `result` until one fails (then result.ok is False and its
    message and hint are that step's); a step with no time left fails as not run, with
    `timeout_hint`. Returns whether every step passed."""
    for name, action in steps:
        if left() <= 0:
            step = Step(name, False, 0, f"Not run: the {total:g} s timeout ran out.",
                        timeout_hint)
        else:
            step = timed_step(name, action, redactor)
        result.steps.append(step)
        if not step.ok:
            result.ok = False
            result.message = f"{name} failed: {step.detail}"
            result.hint = step.hint
            return False
    return True


def record_test_result(row: Any, result: ConnectionTestResult) -> None:
    """Store a test's result on its row (a connector or the Exchange settings: last_test_ok,
    last_tested_at, last_test_message with the hint of a failure, last_test_result). The
    result's text is redacted already."""
    row.last_test_ok = result.ok
    row.last_tested_at = result.tested_at
    row.last_test_message = (
        result.message if result.ok or not result.hint else f"{result.message} {result.hint}"
    )
    row.last_test_result = result.as_dict()
    row.save(update_fields=["last_test_ok", "last_tested_at", "last_test_message",
                            "last_test_result"])


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _certificate_days(sock: ssl.SSLSocket) -> tuple[int, str]:
    cert = sock.getpeercert()
    not_after = str(cert.get("notAfter", "")) if cert else ""
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
    return (expires - datetime.now(UTC)).days, expires.date().isoformat()


def _expiry_of_untrusted(host: str, port: int, timeout: float) -> str:
    """The expiry date of a certificate we refused, read without verifying it (for the hint)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, context.wrap_socket(
            raw, server_hostname=host
        ) as sock:
            der = sock.getpeercert(binary_form=True)
    except OSError:
        return ""
    if not der:
        return ""
    from cryptography import x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc.date().isoformat()


def connect_step(connector: Connector, budget: _Budget, redactor: Redactor) -> str:
    """Resolve the host, open TCP, and for https complete TLS; returns what was seen."""
    parts = urlsplit(connector.uri)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    timeout = min(http.CONNECT_TIMEOUT_S, max(budget.left(), 0.1))
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        address = addresses[0][4][0]
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise error_for_exception(
            exc, url=connector.uri, timeout_s=timeout, redactor=redactor
        ) from None
    with raw:
        if parts.scheme != "https":
            return f"Connected to {host}:{port} ({address}); plain http, no TLS."
        try:
            with http.ssl_context().wrap_socket(raw, server_hostname=host) as sock:
                days, date = _certificate_days(sock)
                version = sock.version()
        except (OSError, ssl.SSLError) as exc:
            error = error_for_exception(
                exc, url=connector.uri, timeout_s=timeout, redactor=redactor
            )
            expiry = _expiry_of_untrusted(host, port, timeout)
            if expiry:
                error.message += f" (the certificate's expiry date is {expiry})"
            raise error from None
    detail = f"Connected to {host}:{port} ({address}); {version}, certificate valid until {date}"
    if days < CERT_WARNING_DAYS:
        return f"{detail} — expires in {days} day(s): renew it soon."
    return f"{detail} ({days} days left)."


def token_step(connector: Connector) -> str:
    token = auth.fetch_token(connector, force=True)
    minutes = max(0, round((token.expires_at - time.time()) / 60))
    return f"Token received ({token.token_type}), valid for {minutes} min."


def run_connection_test(connector: Connector) -> ConnectionTestResult:
    """Run every step until one fails; never raises for a failing remote."""
    redactor = redactor_for(connector)
    budget = _Budget(connector)
    result = ConnectionTestResult(ok=True, tested_at=datetime.now(UTC))
    steps: list[tuple[str, StepAction]] = [
        ("Resolve and connect", lambda: connect_step(connector, budget, redactor)),
    ]
    if auth.has_token(connector):
        steps.append(("Authenticate (token)", lambda: token_step(budget.connector(connector))))
    steps.append(("Probe", lambda: _probe(budget.connector(connector))))
    if run_steps(result, steps, left=budget.left, total=budget.total, redactor=redactor,
                 timeout_hint="Raise the connector's timeout or check why the earlier steps "
                 "are slow."):
        result.message = "The connection works: " + result.steps[-1].detail
    return result


def _probe(connector: Connector) -> str:
    probe = registry.client_for(connector).probe()
    return probe.detail
