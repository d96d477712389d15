"""Graph change-notification subscriptions: one per synced mailbox (what Graph then posts to
them is taken in by exchange_sync/notifications.py).

Spec: https://learn.microsoft.com/graph/api/resources/subscription (Outlook events: at most
4230 minutes), /graph/change-notifications-delivery-webhooks (validation, clientState) and
/graph/change-notifications-lifecycle-events (reauthorizationRequired, subscriptionRemoved,
missed).

- Each synced resource (sync on, a mailbox, Exchange sync configured, PUBLIC_BASE_URL set) has
  one subscription on `/users/{graph user id}/events` for created, updated and deleted events,
  living SUBSCRIPTION_MINUTES (4200 of Graph's 4230) and renewed once fewer than RENEW_BEFORE
  (24 h) remain. The "exchange: renew subscriptions" schedule runs every 30 minutes, so a
  subscription gets about 48 renewal chances before it would lapse.
- `subscriptions_sync` is the one place that reconciles: it creates what synced mailboxes
  lack, removes what other resources (or a switched-off Exchange sync) still have, renews what
  expires soon and handles lifecycle notifications whose task was lost. Anything that turns
  sync on or off calls `subscriptions_sync_soon()`.
- Only the SHA-256 of each random clientState is stored; a notification's clientState is
  hashed and compared in constant time. A notification only schedules a delta round
  (`exchange_sync.inbound.schedule_round`): it never carries data we trust.
- After a subscription is (re)created a full delta round is scheduled: whatever changed while
  no subscription listened is read then.

Graph failures never raise from these services: they are stored on the subscription
(`last_error`) and written to the sync log with Graph's hint, and the next schedule tries again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .graph import GraphClient, GraphError
from .inbound import schedule_round
from .models import (
    ExchangeSettings,
    Notification,
    Resource,
    Subscription,
    SyncDirection,
    SyncLogEntry,
)
from .queueing import queue_task
from .resources import synced
from .times import parse_utc, utc_text

log = logging.getLogger(__name__)

SUBSCRIPTION_MINUTES = 4200  # Graph allows at most 4230 for Outlook events; keep a margin
RENEW_BEFORE = timedelta(hours=24)  # renew once less than this is left (schedule: every 30 min)
CHANGE_TYPES = "created,updated,deleted"
NOTIFICATIONS_PATH = "/api/v1/exchange/notifications/"
LIFECYCLE_PATH = "/api/v1/exchange/lifecycle/"
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
LOST_TASK_AFTER = timedelta(minutes=2)  # an unhandled lifecycle notification's task was lost
UNREACHABLE_HINT = (
    "Microsoft Graph could not validate {url}: it must answer Graph's validation request "
    "(POST ?validationToken=…) with the token within 10 s. Set PUBLIC_BASE_URL to this "
    "server's public https address (reachable from the internet, valid certificate) and check "
    "that a proxy or firewall lets Graph's POSTs through to /api/v1/exchange/."
)
_NO_HASH = hashlib.sha256(b"no subscription").hexdigest()


def client_state_hash(client_state: str) -> str:
    """The stored form of a clientState: its SHA-256, hex."""
    return hashlib.sha256(client_state.encode()).hexdigest()


def client_state_matches(subscription: Subscription | None, client_state: Any) -> bool:
    """Constant time: does `client_state` belong to the subscription? (None: always False,
    after the same work, so timing does not tell which subscription ids exist.)"""
    given = client_state_hash(client_state if isinstance(client_state, str) else "")
    expected = subscription.client_state_hash if subscription is not None else _NO_HASH
    return hmac.compare_digest(given, expected) and subscription is not None


def notification_url(path: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def _log(resource: Resource | None, message: str, *, hint: str = "", error: bool = False,
         **detail: Any) -> None:
    SyncLogEntry.objects.create(
        direction=SyncDirection.INBOUND,
        kind=SyncLogEntry.Kind.ERROR if error else SyncLogEntry.Kind.SUBSCRIPTION,
        resource=resource, message=message, hint=hint, detail=detail,
    )


def _failed(resource: Resource, what: str, exc: GraphError,
            subscription: Subscription | None = None) -> None:
    """A Graph failure: on the subscription row (when there is one) and in the sync log."""
    message = f"Could not {what} the mailbox subscription of {resource}: {exc.message}"
    if subscription is not None and subscription.pk:
        subscription.last_error = f"{message} {exc.hint}".strip()[:2000]
        subscription.save(update_fields=["last_error"])
    _log(resource, message, hint=exc.hint, error=True, status=exc.status_code, code=exc.code)
    log.warning("%s", message)


def inbound_blocker(exchange: ExchangeSettings) -> str:
    """Why no subscription can exist now ("" when they can)."""
    if not exchange.enabled:
        return "Exchange sync is off."
    if not exchange.configured:
        return "Exchange sync has no tenant ID, client ID or client secret."
    if not settings.PUBLIC_BASE_URL:
        return ("PUBLIC_BASE_URL is not set: Microsoft Graph has no address to send "
                "notifications to.")
    return ""


def _has_credentials(exchange: ExchangeSettings) -> bool:
    return bool(exchange.tenant_id and exchange.client_id and exchange.client_secret)


@contextmanager
def _graph(client: GraphClient | None, exchange: ExchangeSettings) -> Iterator[GraphClient]:
    """The caller's client, or one of our own that is closed afterwards."""
    if client is not None:
        yield client
        return
    with GraphClient.from_settings(exchange) as own:
        yield own


def _subscription_of(resource: Resource) -> Subscription | None:
    return Subscription.objects.filter(resource=resource).first()


def _expected_path(resource: Resource) -> str:
    return f"/users/{resource.graph_user_id}/events"


# --- one subscription ---------------------------------------------------------------------------


def subscription_ensure(*, resource: Resource, client: GraphClient | None = None
                        ) -> Subscription | None:
    """The resource's live subscription, created at Graph when it has none (idempotent).

    Returns None (and creates nothing) when the resource is not synced, Exchange sync is off or
    unconfigured, or PUBLIC_BASE_URL is unset; and when Graph refuses (e.g. it could not reach
    the notification URL): the error is then on the sync log (and on an existing row). A new
    subscription schedules a full delta round of the mailbox. Never raises GraphError.
    """
    exchange = ExchangeSettings.load()
    if inbound_blocker(exchange) or not synced([resource]):
        return None
    existing = _subscription_of(resource)
    now = timezone.now()
    if (existing is not None and existing.expires_at > now and resource.graph_user_id
            and existing.resource_path == _expected_path(resource)):
        return existing
    with _graph(client, exchange) as graph:
        if existing is not None:  # expired, or for another mailbox: replace it
            if not _delete_at_graph(graph, existing):
                return None
            existing.delete()
        try:
            return _create(graph, resource, now)
        except GraphError as exc:
            if "validation request failed" in exc.message.lower():
                exc.hint = UNREACHABLE_HINT.format(url=notification_url(NOTIFICATIONS_PATH))
            _failed(resource, "create", exc)
            return None


def _create(graph: GraphClient, resource: Resource, now: datetime) -> Subscription | None:
    if not resource.graph_user_id:
        user_id = str(graph.user(resource.email).get("id") or "")
        if not user_id:
            raise GraphError(f"Microsoft Graph returned no user id for {resource.email}.",
                             permanent=True, hint="Check the resource's mailbox email.")
        resource.graph_user_id = user_id
        resource.save(update_fields=["graph_user_id", "updated_at"])
    client_state = secrets.token_urlsafe(32)
    expires = now + timedelta(minutes=SUBSCRIPTION_MINUTES)
    path = _expected_path(resource)
    body = graph.request("POST", "/subscriptions", json={
        "changeType": CHANGE_TYPES,
        "notificationUrl": notification_url(NOTIFICATIONS_PATH),
        "lifecycleNotificationUrl": notification_url(LIFECYCLE_PATH),
        "resource": path,
        "expirationDateTime": utc_text(expires),
        "clientState": client_state,
    }).body or {}
    try:
        with transaction.atomic():
            subscription = Subscription.objects.create(
                resource=resource, subscription_id=str(body.get("id") or ""),
                client_state_hash=client_state_hash(client_state), resource_path=path,
                expires_at=_expiry(body, expires),
            )
    except IntegrityError:  # another worker created one meanwhile: keep theirs, drop ours
        _delete_at_graph(graph, Subscription(subscription_id=str(body.get("id") or "")))
        return _subscription_of(resource)
    _log(resource, f"Subscribed to the mailbox {resource.email} (until "
                   f"{subscription.expires_at:%Y-%m-%d %H:%M} UTC).",
         subscription_id=subscription.subscription_id)
    schedule_round(resource.pk, full=True)  # whatever changed while nobody listened
    return subscription


def _expiry(body: Mapping[str, Any], asked: datetime) -> datetime:
    try:
        return parse_utc(body.get("expirationDateTime")) or asked
    except ValueError:
        return asked


def _delete_at_graph(graph: GraphClient, subscription: Subscription) -> bool:
    """DELETE at Graph; True when gone (404: already gone). Failures: False, recorded."""
    try:
        graph.request("DELETE", f"/subscriptions/{subscription.subscription_id}",
                      accept=(404,))
    except GraphError as exc:
        if subscription.pk:
            _failed(subscription.resource, "remove", exc, subscription)
        return False
    return True


def subscription_remove(*, resource: Resource, client: GraphClient | None = None) -> bool:
    """Delete the resource's subscription at Graph (404 counts as done) and its row.

    Returns True when the resource has no subscription afterwards. Without credentials the
    row alone is deleted (Graph drops the subscription at its expiry; notifications for it are
    refused meanwhile). A Graph failure keeps the row (with `last_error`) and returns False.
    """
    subscription = _subscription_of(resource)
    if subscription is None:
        return True
    exchange = ExchangeSettings.load()
    if _has_credentials(exchange):
        with _graph(client, exchange) as graph:
            if not _delete_at_graph(graph, subscription):
                return False
    subscription.delete()
    _log(resource, f"Removed the mailbox subscription of {resource}.",
         subscription_id=subscription.subscription_id)
    return True


def subscription_renew(*, subscription: Subscription, client: GraphClient | None = None
                       ) -> bool:
    """Extend the subscription to SUBSCRIPTION_MINUTES from now (PATCH expirationDateTime).

    Graph answering 404 means the subscription is gone there: it is recreated (which schedules
    a full round). Returns True when the resource has a live subscription afterwards; a Graph
    failure is recorded (row and sync log) and returns False.
    """
    resource = subscription.resource
    exchange = ExchangeSettings.load()
    if inbound_blocker(exchange):
        return False
    expires = timezone.now() + timedelta(minutes=SUBSCRIPTION_MINUTES)
    with _graph(client, exchange) as graph:
        try:
            answer = graph.request("PATCH", f"/subscriptions/{subscription.subscription_id}",
                                   json={"expirationDateTime": utc_text(expires)},
                                   accept=(404,))
        except GraphError as exc:
            _failed(resource, "renew", exc, subscription)
            return False
        if answer.status == 404:
            _log(resource, f"The mailbox subscription of {resource} no longer exists at "
                           "Microsoft Graph; creating a new one.",
                 subscription_id=subscription.subscription_id)
            subscription.delete()
            return subscription_ensure(resource=resource, client=graph) is not None
    subscription.expires_at = _expiry(answer.body or {}, expires)
    subscription.renewed_at = timezone.now()
    subscription.last_error = ""
    subscription.save(update_fields=["expires_at", "renewed_at", "last_error"])
    return True


def subscription_recreate(*, subscription: Subscription, client: GraphClient | None = None
                          ) -> bool:
    """Replace the subscription with a new one (new id and clientState), then a full round.
    Returns True when the resource has a live subscription afterwards."""
    resource = subscription.resource
    if not subscription_remove(resource=resource, client=client):
        return False
    return subscription_ensure(resource=resource, client=client) is not None


# --- the schedule -------------------------------------------------------------------------------


@dataclass
class SubscriptionsSummary:
    """What `subscriptions_sync` did; str() is the task's one-line result."""

    created: int = 0
    renewed: int = 0
    removed: int = 0
    failed: int = 0
    lifecycle: int = 0
    note: str = ""  # why no subscription can exist now, when that is so

    def __str__(self) -> str:
        text = (f"{self.created} created, {self.renewed} renewed, {self.removed} removed, "
                f"{self.failed} failed")
        if self.lifecycle:
            text += f", {self.lifecycle} lifecycle notification(s) handled"
        return f"{text}. {self.note}".strip()


def subscriptions_sync(*, now: datetime | None = None, client: GraphClient | None = None
                       ) -> SubscriptionsSummary:
    """Bring every subscription in line with the resources (the every-30-minutes schedule).

    Creates one for each synced resource lacking one, removes those of resources no longer
    synced (all of them while inbound sync is impossible: Exchange off or unconfigured, or
    PUBLIC_BASE_URL unset), renews those expiring before `now` + RENEW_BEFORE, and handles
    lifecycle notifications whose task was lost. Never raises GraphError.
    """
    now = now or timezone.now()
    summary = SubscriptionsSummary()
    exchange = ExchangeSettings.load()
    summary.note = inbound_blocker(exchange)
    subscriptions = list(Subscription.objects.select_related("resource"))
    wanted = set() if summary.note else {r.pk for r in synced(
        Resource.objects.filter(sync_enabled=True).exclude(email=""))}
    stale = [s for s in subscriptions if s.resource_id not in wanted]
    if not wanted and not stale:
        return summary
    if not _has_credentials(exchange):
        for subscription in stale:
            summary.removed += subscription_remove(resource=subscription.resource)
        return summary
    with _graph(client, exchange) as graph:
        for subscription in stale:
            _count(summary, subscription_remove(resource=subscription.resource, client=graph),
                   "removed")
        have = {s.resource_id: s for s in subscriptions if s.resource_id in wanted}
        for resource in Resource.objects.filter(pk__in=wanted).order_by("pk"):
            current = have.get(resource.pk)
            if current is None or current.expires_at <= now or not resource.graph_user_id:
                _count(summary, subscription_ensure(resource=resource, client=graph)
                       is not None, "created")
            elif current.expires_at <= now + RENEW_BEFORE:
                _count(summary, subscription_renew(subscription=current, client=graph),
                       "renewed")
        summary.lifecycle = lifecycle_pending(before=now - LOST_TASK_AFTER, client=graph)
    return summary


def _count(summary: SubscriptionsSummary, ok: bool, what: str) -> None:
    if ok:
        setattr(summary, what, getattr(summary, what) + 1)
    else:
        summary.failed += 1


def subscriptions_sync_soon() -> None:
    """Queue the reconciliation (`renew_subscriptions_task`) after the current transaction
    commits: call it whenever sync is turned on or off. A broker failure is only logged (the
    schedule reconciles within 30 minutes)."""
    transaction.on_commit(lambda: queue_task("exchange_sync.tasks.renew_subscriptions_task",
                                         "exchange: subscriptions"))


# --- lifecycle notifications --------------------------------------------------------------------


def lifecycle_handle(*, subscription: Subscription, event: str,
                     client: GraphClient | None = None) -> str:
    """Act on one lifecycle event of the subscription and log it; returns what was done.

    reauthorizationRequired → renew (Graph wants a PATCH within the hour); subscriptionRemoved
    → a new subscription (and with it a full round); missed → a full delta round (Graph dropped
    notifications). Unknown events are logged and otherwise ignored.
    """
    resource = subscription.resource
    if event == "reauthorizationRequired":
        ok = subscription_renew(subscription=subscription, client=client)
        outcome = "renewed" if ok else "renewal failed"
    elif event == "subscriptionRemoved":
        subscription.delete()  # Graph removed it already: no DELETE
        ok = subscription_ensure(resource=resource, client=client) is not None
        outcome = "recreated" if ok else "could not be recreated"
    elif event == "missed":
        schedule_round(resource.pk, full=True)
        outcome = "full delta round scheduled"
    else:
        outcome = "ignored (unknown lifecycle event)"
    _log(resource, f"Lifecycle notification {event} for the mailbox subscription of "
                   f"{resource}: {outcome}.", subscription_id=subscription.subscription_id,
         lifecycle_event=event)
    return outcome


def lifecycle_process(*, notification_id: int, client: GraphClient | None = None) -> str:
    """Handle one stored lifecycle notification once (the task; idempotent)."""
    with transaction.atomic():
        notification = (Notification.objects.select_for_update()
                        .filter(pk=notification_id, kind=Notification.Kind.LIFECYCLE).first())
        if notification is None or notification.processed_at is not None:
            return "nothing to do"
        notification.processed_at = timezone.now()
        notification.save(update_fields=["processed_at"])
    if notification.subscription_id is None:
        return "the subscription no longer exists"
    subscription = (Subscription.objects.select_related("resource")
                    .filter(pk=notification.subscription_id).first())
    if subscription is None:
        return "the subscription no longer exists"
    return lifecycle_handle(subscription=subscription, event=notification.change_type,
                            client=client)


def lifecycle_pending(*, before: datetime, client: GraphClient | None = None) -> int:
    """Handle the lifecycle notifications received before `before` and still unprocessed
    (their task was lost); returns how many."""
    ids = list(Notification.objects.filter(
        kind=Notification.Kind.LIFECYCLE, processed_at__isnull=True, received_at__lt=before,
    ).order_by("pk").values_list("pk", flat=True)[:100])
    for pk in ids:
        lifecycle_process(notification_id=pk, client=client)
    return len(ids)
