"""When rounds run: debounced scheduling, the one-round-per-mailbox lock, and the due rounds.

- `schedule_round` (notifications, the outbound side's 412, an administrator) marks a round due
  after the debounce and rings the doorbell (a `delta_round_task`) after commit; notifications
  within the debounce join one round.
- The lock is a lease on MailboxState (`round_lock_until`, `round_owner`) taken with one
  conditional UPDATE, so two workers never run one mailbox's round at the same time, and a
  killed worker's lease simply runs out.
- `due_rounds` (the every-minute schedule) runs what is due, the safety round of every synced
  mailbox not read for `safety_round_minutes` (lost notifications), and a full round when the
  window moved by a day or more.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import ExchangeSettings, MailboxState, Resource
from ..queueing import queue_task

log = logging.getLogger(__name__)

ROUND_LEASE_S = 300  # a round takes seconds; a dead worker's lease runs out after this
RETRY_AFTER_FAILURE_S = 60  # a transient failure: the every-minute schedule retries then
TASK = "exchange_sync.tasks.delta_round_task"


def state_for(resource_id: int) -> MailboxState:
    state, _ = MailboxState.objects.get_or_create(resource_id=resource_id)
    return state


def schedule_round(resource_id: int, *, full: bool = False, delay_s: float | None = None) -> None:
    """Make a delta round of the mailbox due after `delay_s` (default: the settings' debounce),
    unless one is due sooner already; `full` asks for a full read. Queues the round's task after
    commit when the due time moved (a broker failure is only logged: the schedule runs due
    rounds every minute). Unknown resources are ignored."""
    if not Resource.objects.filter(pk=resource_id).exists():
        return
    delay = ExchangeSettings.load().debounce_s if delay_s is None else max(0.0, delay_s)
    due = timezone.now() + timedelta(seconds=delay)
    state_for(resource_id)
    rows = MailboxState.objects.filter(resource_id=resource_id)
    if full:
        rows.update(full_round_needed=True)
    moved = rows.filter(Q(round_due_at__isnull=True) | Q(round_due_at__gt=due)).update(
        round_due_at=due)
    if moved:
        queue_round(resource_id)


def queue_round(resource_id: int) -> None:
    """Queue `delta_round_task(resource_id)` after commit."""
    transaction.on_commit(lambda: queue_task(TASK, f"exchange: delta round {resource_id}",
                                             resource_id))


# -- the lock ----------------------------------------------------------------------------------
def acquire(resource_id: int, *, starting_round: bool = True) -> str | None:
    """Take the mailbox's round lock (a lease); returns the owner token, or None when another
    holds it. A starting round also clears `round_due_at` (what becomes due meanwhile is left
    for the round after it)."""
    state_for(resource_id)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"[:100]
    now = timezone.now()
    changes: dict[str, object] = {"round_lock_until": now + timedelta(seconds=ROUND_LEASE_S),
                                  "round_owner": owner}
    if starting_round:
        changes["round_due_at"] = None
    taken = MailboxState.objects.filter(resource_id=resource_id).filter(
        Q(round_lock_until__isnull=True) | Q(round_lock_until__lt=now)
    ).update(**changes)
    return owner if taken else None


def release(resource_id: int, owner: str) -> None:
    MailboxState.objects.filter(resource_id=resource_id, round_owner=owner).update(
        round_lock_until=None, round_owner="")


def take_full_flag(resource_id: int) -> bool:
    """Read and clear `full_round_needed` in one statement (only the lock holder does)."""
    return bool(MailboxState.objects.filter(resource_id=resource_id, full_round_needed=True)
                .update(full_round_needed=False))


def keep_due(resource_id: int, *, after_s: float = 0.0) -> None:
    """Make sure a round is due (no later than `after_s` from now)."""
    due = timezone.now() + timedelta(seconds=after_s)
    MailboxState.objects.filter(resource_id=resource_id).filter(
        Q(round_due_at__isnull=True) | Q(round_due_at__gt=due)).update(round_due_at=due)


def due_again(resource_id: int) -> bool:
    return MailboxState.objects.filter(resource_id=resource_id,
                                       round_due_at__isnull=False).exists()


# -- the tasks' logic --------------------------------------------------------------------------
def wait_until_due(resource_id: int) -> bool:
    """Sleep until the mailbox's round is due (at most the debounce); False when none is due
    then."""
    due = MailboxState.objects.filter(resource_id=resource_id).values_list(
        "round_due_at", flat=True).first()
    if due is None:
        return False
    bound = float(ExchangeSettings.load().debounce_s)
    wait = min((due - timezone.now()).total_seconds(), bound)
    if wait > 0:
        time.sleep(wait)
    # Due later than the debounce (a failed round's retry): the every-minute schedule runs it.
    return MailboxState.objects.filter(resource_id=resource_id,
                                       round_due_at__lte=timezone.now()).exists()


def round_reason(state: MailboxState | None, exchange: ExchangeSettings,
                 window_start: datetime, window_end: datetime, now: datetime) -> str:
    """Why the mailbox needs a round now ("" when it does not): full (never read, or asked
    for), window (moved by a day or more: a full round), due, safety (not read for
    `safety_round_minutes`). A failing mailbox waits for its retry time or the safety round."""
    if state is None or state.last_round_at is None:
        return "full"
    due = state.round_due_at is not None and state.round_due_at <= now
    stale = state.last_round_at < now - timedelta(minutes=exchange.safety_round_minutes)
    if state.last_round_ok is False and not due and not stale:
        return ""
    if state.full_round_needed:
        return "full"
    if state.window_start is not None and state.window_end is not None and (
            abs(window_start - state.window_start) >= timedelta(days=1)
            or abs(window_end - state.window_end) >= timedelta(days=1)):
        return "window"
    if due:
        return "due"
    return "safety" if stale else ""
