"""django-q2 task entry points of the Exchange sync: primary keys in, one service each.

Tasks are delivered at least once; every one here is idempotent.
"""

from __future__ import annotations

import time

from .outbound.push import push_all
from .outbound.queue import PUSH_DEBOUNCE_S


def push_pending_task() -> str:
    """Bring the queued appointments' Outlook events up to date (the doorbell and the
    every-minute schedule both call this); returns the summary. Waits PUSH_DEBOUNCE_S first,
    and between claims that were not full, so the changes that arrive meanwhile go out in the
    same `$batch` requests."""
    time.sleep(PUSH_DEBOUNCE_S)
    return str(push_all(settle_s=PUSH_DEBOUNCE_S))


def renew_subscriptions_task() -> str:
    """Every 30 minutes (and after sync is turned on or off): create, remove and renew the
    mailboxes' Graph subscriptions (see subscriptions.subscriptions_sync); returns the
    summary."""
    from .subscriptions import subscriptions_sync

    return str(subscriptions_sync())


def lifecycle_task(notification_id: int) -> str:
    """Act on one stored Graph lifecycle notification (once; see
    subscriptions.lifecycle_process); returns what was done."""
    from .subscriptions import lifecycle_process

    return lifecycle_process(notification_id=notification_id)


def delta_round_task(resource_id: int) -> str:
    """A mailbox's debounced delta round (queued by inbound.schedule_round): waits until it is
    due, then runs it; returns the round's summary."""
    from .inbound import delta_round

    return delta_round(resource_id)


def delta_rounds_task() -> str:
    """Every minute: the due rounds, the safety rounds of mailboxes not read for a while and
    full rounds where the window moved; returns one line per round."""
    from .inbound import due_rounds

    return due_rounds()
