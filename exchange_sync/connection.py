""""Test connection" for Exchange sync: a step-by-step, timed check of the Graph connection.

Steps (the connectors' shape, `connectors.backoffices.connection.Step`):
1. Configuration — the credentials are there (names the missing ones; a disabled sync is noted);
2. Authenticate (token) — a fresh app-only token from Entra ID (`GraphClient.token(force=True)`);
3. Read mailbox — the test mailbox's user, then one calendarView page of the sync window
   (the test mailbox, else the first resource with sync on);
4. Notifications — informational: Graph posts change notifications only to an https
   PUBLIC_BASE_URL (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks);
   without one, only the safety rounds bring Outlook changes in.
The whole test answers within the settings' timeout: each step gets what is left of it. Steps
run until one fails. No text of the result holds the client secret or the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from urllib.parse import urlsplit

from django.conf import settings

from connectors.backoffices.base import BackOfficeError
from connectors.backoffices.connection import (
    ConnectionTestResult,
    Step,
    record_test_result,
    run_steps,
)
from connectors.backoffices.redact import Redactor

from .graph import GraphClient
from .models import ExchangeSettings, Resource

MAX_TIMEOUT_S = 30.0
MAX_RETRY_WAIT_S = 2.0
NOTIFICATIONS_PATH = "/api/v1/exchange/notifications/"


class _Budget:
    """What is left of the settings' timeout (1..30 s)."""

    def __init__(self, timeout_s: float | None) -> None:
        self.total = min(max(float(timeout_s or 15), 1.0), MAX_TIMEOUT_S)
        self.deadline = time.monotonic() + self.total

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


@dataclass
class _Context:
    exchange_settings: ExchangeSettings
    budget: _Budget
    redactor: Redactor

    def client(self) -> GraphClient:
        """A Graph client whose timeout is what is left (at least 1 s), retrying little: a
        test that waits out throttling would outlive its budget."""
        s = self.exchange_settings
        return GraphClient(tenant_id=s.tenant_id, client_id=s.client_id,
                           client_secret=s.client_secret,
                           timeout_s=max(1.0, self.budget.left()), max_retries=1,
                           max_retry_wait_s=min(MAX_RETRY_WAIT_S, self.budget.left()))


def configuration_step(context: _Context) -> str:
    s = context.exchange_settings
    missing = [label for label, value in (("tenant ID", s.tenant_id), ("client ID", s.client_id),
                                          ("client secret", s.client_secret)) if not value]
    if missing:
        raise BackOfficeError(
            f"Missing: {', '.join(missing)}.", permanent=True,
            hint="Fill in the tenant ID, client ID and client secret of the Entra app "
            "registration (Exchange settings → Connection).")
    detail = f"Tenant {s.tenant_id}, client {s.client_id}, client secret set"
    if not s.enabled:
        return (f"{detail}. Exchange sync is not enabled: nothing is read or written until "
                "“enabled” is ticked.")
    return f"{detail}; Exchange sync is enabled."


def token_step(context: _Context) -> str:
    with context.client() as client:
        token = client.token(force=True)
    context.redactor.add(token)
    return f"Token received from Entra ID for tenant {context.exchange_settings.tenant_id}."


def mailbox_to_test(exchange_settings: ExchangeSettings) -> str:
    """The test mailbox, else the mailbox of the first resource with sync on ("" if none)."""
    if exchange_settings.test_mailbox:
        return exchange_settings.test_mailbox
    resource = (Resource.objects.filter(sync_enabled=True).exclude(email="")
                .order_by("source_app", "resource_no").first())
    return resource.email if resource else ""


def mailbox_step(context: _Context) -> str:
    s = context.exchange_settings
    mailbox = mailbox_to_test(s)
    if not mailbox:
        raise BackOfficeError(
            "No mailbox to read: there is no test mailbox and no resource with sync on.",
            permanent=True,
            hint="Set “test mailbox” (Exchange settings → Connection) or turn sync on for a "
            "resource with a mailbox email.")
    now = datetime.now(UTC)
    window = {
        "startDateTime": _iso(now - timedelta(days=s.window_past_days)),
        "endDateTime": _iso(now + timedelta(days=s.window_future_days)),
        "$top": 1,
    }
    with context.client() as client:
        user = client.user(mailbox)
        user_id = str(user.get("id") or mailbox)
        page = client.request("GET", f"/users/{user_id}/calendarView", params=window).body
    events = len((page or {}).get("value") or []) if isinstance(page, dict) else 0
    name = user.get("displayName") or user.get("mail") or mailbox
    more = " (and more)" if isinstance(page, dict) and page.get("@odata.nextLink") else ""
    return (f"Read the calendar of {mailbox} ({name}): {events} event(s){more} in the sync "
            f"window ({s.window_past_days} days back, {s.window_future_days} days ahead).")


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def notifications_step(context: _Context) -> Step | str:
    """Informational: passes, with a warning (as its hint) when Graph cannot reach us."""
    base = (settings.PUBLIC_BASE_URL or "").rstrip("/")
    if not base:
        return Step("", True, 0, "Warning: PUBLIC_BASE_URL is not set, so Microsoft Graph "
                    "cannot send change notifications: inbound sync (Outlook → planner) then "
                    "only runs on the safety rounds.",
                    "Set PUBLIC_BASE_URL to this server's public https address.")
    url = base + NOTIFICATIONS_PATH
    if urlsplit(base).scheme != "https":
        return Step("", True, 0, f"Warning: PUBLIC_BASE_URL is plain http ({url}); Microsoft "
                    "Graph only calls https endpoints, so inbound sync (Outlook → planner) "
                    "gets no change notifications and only runs on the safety rounds.",
                    "Serve DimeConnect over https (a valid public certificate) and set "
                    "PUBLIC_BASE_URL to that https address.")
    return f"Change notifications go to {url} (inbound sync needs Graph to reach it)."


STEPS: tuple[tuple[str, Callable[[_Context], Step | str]], ...] = (
    ("Configuration", configuration_step),
    ("Authenticate (token)", token_step),
    ("Read mailbox", mailbox_step),
    ("Notifications", notifications_step),
)


def run_exchange_test(exchange_settings: ExchangeSettings) -> ConnectionTestResult:
    """Run every step until one fails; never raises for a failing remote."""
    redactor = Redactor([exchange_settings.client_secret])
    context = _Context(exchange_settings, _Budget(exchange_settings.timeout_s), redactor)
    result = ConnectionTestResult(ok=True, tested_at=datetime.now(UTC))
    steps = [(name, partial(action, context)) for name, action in STEPS]
    if not run_steps(result, steps, left=context.budget.left, total=context.budget.total,
                     redactor=redactor,
                     timeout_hint="Raise the timeout (Exchange settings → Connection) or check "
                     "why the earlier steps are slow."):
        return result
    warnings = [step.hint for step in result.steps if step.hint]
    result.message = "The Exchange connection works: " + result.steps[2].detail
    result.hint = " ".join(warnings)
    return result


def exchange_test_connection(*, exchange_settings: ExchangeSettings) -> ConnectionTestResult:
    """Run "test connection" and store its result on the settings row (last_test_ok,
    last_tested_at, last_test_message, last_test_result). No stored text holds a secret."""
    result = run_exchange_test(exchange_settings)
    record_test_result(exchange_settings, result)
    return result

