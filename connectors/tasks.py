"""django-q2 task entry points: they take primary keys and call one service each.

Tasks are delivered at least once; every one here is idempotent.
"""

from __future__ import annotations

from . import delivery, retention


def deliver_backlog(connector_id: int) -> int:
    """Send the connector's due dispatches, in order (see delivery.deliver_backlog)."""
    return delivery.deliver_backlog(connector_id)


def deliver_dispatch(dispatch_id: int) -> str:
    """Send one dispatch if it is due and first in its chain (see delivery.deliver). Nothing
    queues this any more; it serves messages queued before backlog tasks."""
    return delivery.deliver(dispatch_id)


def sweep_dispatches() -> int:
    """Every minute: reclaim lost work and queue every due dispatch (see delivery.sweep)."""
    return delivery.sweep()


def purge_dispatch_log() -> str:
    """Daily: delete old closed dispatches, their attempts and old events with the limits of
    the settings; returns the summary (see retention.purge_with_settings)."""
    return retention.scheduled_purge()
