"""The sweeper and what operators do: retry dispatches, quarantine and resume connectors."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from connectors.models import RETRYABLE_STATUSES, AttemptOutcome, Connector, Dispatch

from .common import CLAIMABLE, SWEEP_BATCH, S, chain_heads, locking, log, log_attempt, ring


def sweep() -> int:
    """Reclaim dispatches whose worker died (lease expired), and queue a backlog task for each
    connector (not quarantined) with a due chain head, whether or not one seems queued already
    (this is what recovers lost messages); returns how many due chain heads there were."""
    now = timezone.now()
    with transaction.atomic():
        lost = list(locking(Dispatch.objects.filter(status=S.SENDING, lease_until__lt=now)))
        for dispatch in lost:
            dispatch.status = S.RETRYING
            dispatch.next_attempt_at = now
            dispatch.lease_until = None
            dispatch.save(update_fields=["status", "next_attempt_at", "lease_until",
                                         "updated_at"])
            log_attempt(dispatch, AttemptOutcome.LOST,
                 message=f"The worker ({dispatch.lease_owner or 'unknown'}) did not finish "
                 "this attempt; it is sent again (the receiver may see it twice).")
    due = list(
        chain_heads(now).order_by("next_attempt_at")
        .values_list("pk", "connector_id")[:SWEEP_BATCH]
    )
    ring({connector_id for _, connector_id in due}, force=True)
    return len(due)


def _user_label(user: Any) -> str:
    return str(getattr(user, "get_username", lambda: "")() or "") if user else ""


def dispatches_retry(dispatch_ids: list[int], *, user: Any = None) -> int:
    """Make failed, cancelled or retrying dispatches due now, starting their retry schedule
    again, log who asked, and queue them; returns how many."""
    now = timezone.now()
    retried: list[int] = []
    connectors: set[int] = set()
    with transaction.atomic():
        for dispatch in locking(Dispatch.objects.filter(
            pk__in=dispatch_ids, status__in=RETRYABLE_STATUSES
        )):
            dispatch.status = S.PENDING
            dispatch.attempts = 0
            dispatch.next_attempt_at = now
            dispatch.save(update_fields=["status", "attempts", "next_attempt_at", "updated_at"])
            log_attempt(dispatch, AttemptOutcome.REQUESTED, user=_user_label(user),
                 message=f"Retry requested by {_user_label(user) or 'an operator'}.")
            retried.append(dispatch.pk)
            connectors.add(dispatch.connector_id)
    transaction.on_commit(lambda: ring(connectors))
    return len(retried)


def connector_quarantine(connector: Connector, *, reason: str) -> None:
    """Hold the connector's dispatches until someone resumes it (visible in the admin)."""
    Connector.objects.filter(pk=connector.pk, quarantined_at__isnull=True).update(
        quarantined_at=timezone.now(), quarantine_reason=reason
    )
    log.warning("Connector %s quarantined: %s", connector.pk, reason)


def connector_resume(connector: Connector, *, user: Any = None) -> int:
    """Lift the quarantine and make the held dispatches due now; returns how many."""
    now = timezone.now()
    with transaction.atomic():
        Connector.objects.filter(pk=connector.pk).update(
            quarantined_at=None, quarantine_reason="", failing_since=None
        )
        held = list(Dispatch.objects.filter(connector_id=connector.pk, status__in=CLAIMABLE)
                    .values_list("pk", flat=True))
        Dispatch.objects.filter(pk__in=held).update(next_attempt_at=now, attempts=0)
        for dispatch in Dispatch.objects.filter(pk__in=held[:1]):
            log_attempt(dispatch, AttemptOutcome.REQUESTED, user=_user_label(user),
                 message=f"Connector resumed by {_user_label(user) or 'an operator'}; "
                 f"{len(held)} held dispatch(es) are due now.")
    if held:
        transaction.on_commit(lambda: ring([connector.pk]))
    return len(held)
