"""Queueing the Exchange sync's django-q2 tasks: the broker is a doorbell, never the record.

Every task here also runs from a schedule (or its state waits in the database), so a broker
that is down only delays the work: the failure is logged, never raised to the caller.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def queue_task(func: str, name: str, *args: Any) -> None:
    """Queue `func(*args)` now; a broker failure is only logged (the schedules catch up)."""
    from django_q.tasks import async_task

    try:
        async_task(func, *args, task_name=name, group="exchange")
    except Exception as exc:  # the broker being down must not fail the caller
        log.warning("Could not queue %s (%s); the schedule will do it.", name,
                    type(exc).__name__)
