"""What every part of delivery shares: statuses, the lease, queueing, row locks, the log."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any

from django.conf import settings
from django.db import connection, transaction
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
    in the database, and the sweeper sends it within a minute.

    With the ORM broker the messages are written in one transaction: one commit for a bulk
    post's 500 messages instead of 500 (docs/BENCHMARKS.md, "Event intake"). If that
    transaction fails, none of them is queued, and the sweeper sends them all.
    """
    from django_q.tasks import async_task

    ids = list(dispatch_ids)
    if not ids:
        return
    orm_alias = settings.Q_CLUSTER.get("orm")
    batch = transaction.atomic(using=str(orm_alias)) if orm_alias else nullcontext()
    queued = 0
    try:
        with batch:
            for dispatch_id in ids:
                async_task("connectors.tasks.deliver_dispatch", dispatch_id,
                           task_name=f"deliver dispatch {dispatch_id}", group="dispatch")
                queued += 1
    except Exception as exc:  # the broker being down must not fail the request
        lost = len(ids) if orm_alias else len(ids) - queued
        log.warning("Could not queue %s dispatch(es), first %s (%s); the sweeper will send "
                    "them.", lost, ids[0 if orm_alias else queued], type(exc).__name__)


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
    """Close the attempt: the status, no lease, and the last_* and delivered_at fields as set on
    `dispatch`, written in one UPDATE (the row is ours: locked or under our lease)."""
    dispatch.status = status
    dispatch.lease_until = None
    dispatch.lease_owner = ""
    if status != S.RETRYING:
        dispatch.next_attempt_at = None
    dispatch.updated_at = timezone.now()
    Dispatch.objects.filter(pk=dispatch.pk).update(
        status=dispatch.status, lease_until=None, lease_owner="",
        next_attempt_at=dispatch.next_attempt_at, last_error=dispatch.last_error,
        last_hint=dispatch.last_hint, last_status_code=dispatch.last_status_code,
        delivered_at=dispatch.delivered_at, updated_at=dispatch.updated_at,
    )
