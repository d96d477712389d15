"""What the django-q2 tasks run (exchange_sync/tasks.py is the interface): one queued round
(after its debounce) and the every-minute pass over every synced mailbox."""

from __future__ import annotations

import time

from django.utils import timezone

from ..models import ExchangeSettings, MailboxState, Resource
from ..resources import synced
from ..times import sync_window
from . import schedule
from .rounds import run_round

DUE_BUDGET_S = 90.0  # the cluster's task timeout is 120 s; the next minute continues


def delta_round(resource_id: int) -> str:
    """A queued round: wait until it is due (bounded by the debounce), then run it. Returns
    the summary (or why nothing ran). Idempotent: a round already run leaves nothing due."""
    resource = Resource.objects.filter(pk=resource_id).first()
    if resource is None:
        return f"resource {resource_id}: no such resource"
    if not schedule.wait_until_due(resource_id):
        return f"resource {resource_id}: no round due now (run already, or the schedule runs it)"
    return str(run_round(resource))


def due_rounds(*, budget_s: float = DUE_BUDGET_S) -> str:
    """Every synced mailbox whose round is due, whose last round is older than the safety
    interval, or whose window moved by a day (a full round), within `budget_s` seconds.
    Returns one line per round run."""
    exchange = ExchangeSettings.load()
    if not exchange.configured:
        return "Exchange sync is off or not configured."
    resources = synced(Resource.objects.filter(sync_enabled=True).exclude(email=""))
    states = {state.resource_id: state for state in MailboxState.objects.filter(
        resource__in=resources)}
    start, end = sync_window(exchange)
    deadline = time.monotonic() + budget_s
    lines: list[str] = []
    for resource in resources:
        if time.monotonic() > deadline:
            lines.append("time budget used up: the next run continues")
            break
        reason = schedule.round_reason(states.get(resource.pk), exchange, start, end,
                                       timezone.now())
        if reason:
            summary = run_round(resource, full=reason in ("full", "window"))
            lines.append(f"{reason}: {summary}")
    return "\n".join(lines) or "No round due."
