"""What Graph posts to the notification and lifecycle endpoints: checked, stored, acted on.

Spec: https://learn.microsoft.com/graph/change-notifications-delivery-webhooks (clientState,
answering 202 at once) and /graph/change-notifications-lifecycle-events. A notification never
carries data we trust: a change only schedules a (debounced) delta round for its mailbox, and a
lifecycle event is handled by `subscriptions.lifecycle_handle` in a task.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from .inbound import schedule_round
from .models import Notification, Subscription
from .queueing import queue_task
from .subscriptions import client_state_matches

MAX_NOTIFICATIONS = 1000  # items in one POST (Graph sends far fewer)



class NotificationInvalid(ValueError):
    """The body is not a notification collection (answer 400 with the message)."""


class NotificationRefused(PermissionError):
    """An item names an unknown subscription or a wrong clientState (answer 403)."""


def _items(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, Mapping) or not isinstance(body.get("value"), list):
        raise NotificationInvalid('The body must be a JSON object with a "value" array of '
                                  "notifications.")
    items = body["value"]
    if not items or len(items) > MAX_NOTIFICATIONS:
        raise NotificationInvalid(f'"value" must hold 1 to {MAX_NOTIFICATIONS} notifications.')
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise NotificationInvalid(f"value.{index}: a notification must be a JSON object.")
        if not isinstance(item.get("subscriptionId"), str) or not item["subscriptionId"]:
            raise NotificationInvalid(f"value.{index}.subscriptionId: a string is required.")
        kind = "lifecycleEvent" if "lifecycleEvent" in item else "changeType"
        if not isinstance(item.get(kind), str) or not item[kind]:
            raise NotificationInvalid(f"value.{index}: changeType or lifecycleEvent "
                                      "(a string) is required.")
    return [dict(item) for item in items]


def notifications_accept(*, body: Any) -> list[Notification]:
    """Check and store a POSTed notification collection; returns the stored notifications.

    Every item is checked first: NotificationInvalid (400) for a wrong shape,
    NotificationRefused (403) when any item names an unknown subscription or its clientState
    does not match (then nothing is stored or scheduled). Then, in one transaction: each item
    is stored without its clientState, the subscriptions' `last_notification_at` is set, a
    (debounced) delta round is scheduled once per mailbox with change notifications, and each
    lifecycle notification is queued for `lifecycle_task` after commit. Graph's top-level
    `validationTokens` (rich notifications, which we do not use) are ignored.
    """
    items = _items(body)
    ids = {item["subscriptionId"] for item in items}
    known = {s.subscription_id: s for s in Subscription.objects.filter(subscription_id__in=ids)}
    refused = [index for index, item in enumerate(items)
               if not client_state_matches(known.get(item["subscriptionId"]),
                                           item.get("clientState"))]
    if refused:
        raise NotificationRefused(
            f"Notification value.{refused[0]} names an unknown subscription or a wrong "
            f"clientState ({len(refused)} of {len(items)} refused); nothing was stored.")
    now = timezone.now()
    with transaction.atomic():
        stored = Notification.objects.bulk_create([_notification(item, known, now)
                                                   for item in items])
        Subscription.objects.filter(pk__in=[s.pk for s in known.values()]).update(
            last_notification_at=now)
        for resource_id in sorted({known[i["subscriptionId"]].resource_id for i in items
                                   if "lifecycleEvent" not in i}):
            schedule_round(resource_id)
        for notification in stored:
            if notification.kind == Notification.Kind.LIFECYCLE:
                _lifecycle_soon(notification.pk)
    return stored


def _notification(item: dict[str, Any], known: Mapping[str, Subscription],
                  now: datetime) -> Notification:
    lifecycle = "lifecycleEvent" in item
    payload = {k: v for k, v in item.items() if k != "clientState"}
    return Notification(
        kind=Notification.Kind.LIFECYCLE if lifecycle else Notification.Kind.CHANGE,
        subscription=known[item["subscriptionId"]],
        subscription_id_text=item["subscriptionId"][:100],
        change_type=str(item["lifecycleEvent" if lifecycle else "changeType"])[:40],
        resource_path=str(item.get("resource") or "")[:500],
        payload=payload,
        processed_at=None if lifecycle else now,  # a change's work: the scheduled round
    )


def _lifecycle_soon(notification_id: int) -> None:
    transaction.on_commit(lambda: queue_task("exchange_sync.tasks.lifecycle_task",
                                         "exchange: lifecycle", notification_id))

