"""What follows an administrator's change to the Exchange sync configuration.

Interfaces (the admin, its actions) call these after saving; the work itself happens after
commit, in django-q2 tasks.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from .models import ExchangeSettings, Resource
from .outbound import mark_pending, queue_push
from .outbound.reconcile import appointments_to_push
from .subscriptions import subscriptions_sync_soon


def resources_changed(*, resources: Iterable[Resource]) -> int:
    """Resources' sync, mailbox, rules or privacy changed: re-push their appointments (events
    appear, change or go — only what differs is written) and reconcile the mailbox
    subscriptions, both after commit. Returns how many appointments were queued (0 while
    Exchange sync is off)."""
    exchange = ExchangeSettings.load()
    if not exchange.enabled:
        return 0
    ids = appointments_to_push(list(resources), exchange)
    mark_pending(ids)
    if ids:
        transaction.on_commit(queue_push)
    subscriptions_sync_soon()
    return len(ids)


def exchange_settings_changed(*, exchange: ExchangeSettings, was_enabled: bool) -> int:
    """The Exchange settings were saved: when sync was just turned on, push every synced
    resource's appointments; on or off, reconcile the subscriptions. Returns how many
    appointments were queued."""
    subscriptions_sync_soon()
    if exchange.enabled and not was_enabled:
        return resources_changed(resources=Resource.objects.filter(sync_enabled=True))
    return 0
