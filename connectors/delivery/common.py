"""What every part of delivery shares: statuses, the lease, queueing, row locks, the log."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from connectors.backoffices import http
from connectors.models import OPEN_STATUSES, Attempt, Connector, Dispatch, DispatchStatus

log = logging.getLogger("connectors.delivery")

S = DispatchStatus
CLAIMABLE = (S.PENDING, S.RETRYING)
JITTER = 0.2  # ±20 % on every scheduled delay
THROTTLED_MIN_WAIT_S = 60  # after a 429 or a timeout, wait at least this long
SHORT_RETRY_MAX_S = 15  # retries due within this are waited for in the task itself
SWEEP_BATCH = 1000


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lease_seconds(connector: Connector) -> float:
    """How long a claim holds: a WSDL load, a token fetch and the send, plus a margin."""
    return 3 * http.total_timeout(connector) + 30


def enqueue(dispatch_ids: Iterable[int]) -> None:
    """Ring the broker's doorbell for each dispatch. A failure is only logged: the dispatch is
    in the database, and the sweeper sends it within a minute."""
    from django_q.tasks import async_task

    for dispatch_id in dispatch_ids:
        try:
            async_task("connectors.tasks.deliver_dispatch", dispatch_id,
                       task_name=f"deliver dispatch {dispatch_id}", group="dispatch")
        except Exception as exc:  # the broker being down must not fail the request
            log.warning("Could not queue dispatch %s (%s); the sweeper will send it.",
                        dispatch_id, type(exc).__name__)


def locking(queryset: QuerySet[Dispatch]) -> QuerySet[Dispatch]:
    if connection.features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True, of=("self",))
    return queryset.select_for_update()


def open_before(dispatch: Dispatch) -> bool:
    return Dispatch.objects.filter(
        appointment_id=dispatch.appointment_id, connector_id=dispatch.connector_id,
        pk__lt=dispatch.pk, status__in=OPEN_STATUSES,
    ).exists()


def log_attempt(dispatch: Dispatch, outcome: str, *, message: str = "", hint: str = "",
         user: str = "", **fields: Any) -> Attempt:
    number = Attempt.objects.filter(dispatch=dispatch).count() + 1
    return Attempt.objects.create(
        dispatch=dispatch, connector_id=dispatch.connector_id, number=number,
        started_at=fields.pop("started_at", timezone.now()),
        outcome=outcome, message=message, hint=hint, user=user, **fields,
    )


def finish(dispatch: Dispatch, status: str) -> None:
    dispatch.status = status
    dispatch.lease_until = None
    dispatch.lease_owner = ""
    if status != S.RETRYING:
        dispatch.next_attempt_at = None
    dispatch.save(update_fields=["status", "lease_until", "lease_owner", "next_attempt_at",
                                 "last_error", "last_hint", "last_status_code", "delivered_at",
                                 "updated_at"])
