"""What every part of delivery shares: statuses, the lease, queueing, row locks, the log."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from connectors.backoffices import http
from connectors.models import OPEN_STATUSES, Attempt, Connector, Dispatch, DispatchStatus
from connectors.sql import datetime_param, first_column, placeholders

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


# A queued backlog task that has not started after this long is presumed lost: ring again.
RING_STALE_S = 60


def ring(connector_ids: Iterable[int], *, force: bool = False) -> list[int]:
    """Make sure a "deliver backlog" task (`sending.deliver_backlog`) is queued for each
    connector that is not quarantined; returns the connectors a task was queued for.

    One task sends a connector's whole backlog, so a task is queued only when none is waiting
    already: `Connector.backlog_queued_at` is set here and cleared when a task starts, and a
    dispatch committed before that start is seen by it. A mark older than RING_STALE_S is
    ignored (its message was lost); `force` ignores the mark (the sweeper, which exists to
    recover lost messages). The marks and the messages are written in one transaction with the
    ORM broker (one commit); if queueing fails, no mark stays set and the failure is only
    logged: the dispatches are in the database and the sweeper queues them within a minute.
    """
    from django_q.tasks import async_task

    wanted = set(connector_ids)
    if not wanted:
        return []
    now = timezone.now()
    stale = now - timedelta(seconds=RING_STALE_S)
    unmarked = Connector.objects.filter(quarantined_at__isnull=True)
    if not force:
        unmarked = unmarked.filter(
            Q(backlog_queued_at__isnull=True) | Q(backlog_queued_at__lt=stale))
    orm_alias = settings.Q_CLUSTER.get("orm")
    rung: list[int] = []
    try:  # the database or the broker being down must not fail the request
        # A read first: while a task is waiting (a busy connector), that is all a ring costs.
        # It is `unmarked.filter(pk__in=wanted)`, as SQL: every event post rings
        # (connectors/sql.py).
        mark = "" if force else " AND (backlog_queued_at IS NULL OR backlog_queued_at < %s)"
        ids = sorted(first_column(
            "SELECT id FROM connectors_connector WHERE quarantined_at IS NULL"
            f"{mark} AND id IN ({placeholders(len(wanted))})",
            [*([] if force else [datetime_param(stale)]), *wanted],
        ))
        if not ids:
            return []
        with transaction.atomic(using=str(orm_alias)) if orm_alias else transaction.atomic():
            for connector_id in ids:  # marked again under the row's lock: one ring wins
                if unmarked.filter(pk=connector_id).update(backlog_queued_at=now):
                    rung.append(connector_id)
            for connector_id in rung:
                async_task("connectors.tasks.deliver_backlog", connector_id,
                           task_name=f"deliver backlog of connector {connector_id}",
                           group="dispatch")
    except Exception as exc:
        log.warning("Could not queue delivery for connector(s) %s (%s); the sweeper will send "
                    "their dispatches.", ", ".join(map(str, sorted(wanted))),
                    type(exc).__name__)
        return []
    return rung


def locking(queryset: QuerySet[Dispatch]) -> QuerySet[Dispatch]:
    if connection.features.has_select_for_update_skip_locked:
        return queryset.select_for_update(skip_locked=True, of=("self",))
    return queryset.select_for_update()


def chain_heads(now: datetime) -> QuerySet[Dispatch]:
    """Dispatches due at `now` with no earlier open one in their chain (appointment and
    connector), of connectors not quarantined: what may be sent next."""
    earlier_open = Dispatch.objects.filter(
        appointment_id=OuterRef("appointment_id"), connector_id=OuterRef("connector_id"),
        pk__lt=OuterRef("pk"), status__in=OPEN_STATUSES,
    )
    return Dispatch.objects.filter(
        status__in=CLAIMABLE, next_attempt_at__lte=now, connector__quarantined_at__isnull=True
    ).exclude(Exists(earlier_open))


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
