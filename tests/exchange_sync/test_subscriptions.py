"""Mailbox subscriptions against the fake Graph, whose validation requests, change and lifecycle
notifications reach the app through pytest-django's live server (real HTTP both ways)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

import exchange_sync.admin_subscriptions  # noqa: F401  (registers the admins; admin.py imports it)
from exchange_sync.models import (
    ExchangeSettings,
    MailboxState,
    Notification,
    Resource,
    Subscription,
    SyncLogEntry,
)
from exchange_sync.subscriptions import (
    LIFECYCLE_PATH,
    NOTIFICATIONS_PATH,
    subscription_ensure,
    subscription_remove,
    subscription_renew,
    subscriptions_sync,
)
from exchange_sync.tasks import lifecycle_task, renew_subscriptions_task
from tests.exchange_sync import task_queue
from tests.exchange_sync.outbound_support import configure_exchange, resource
from tests.fakes import graph as graph_fake

pytestmark = pytest.mark.django_db(transaction=True)  # the live server must see the rows

ANNA = "anna@contoso.test"
BOB = "bob@contoso.test"


@pytest.fixture
def graph(settings, live_server, graph_server):
    """The fake Graph's state, with Exchange sync configured and PUBLIC_BASE_URL pointing at
    the live server."""
    settings.PUBLIC_BASE_URL = live_server.url
    configure_exchange()
    return graph_server.state


@pytest.fixture
def anna(graph) -> Resource:
    return resource(graph, "R1", ANNA)


@pytest.fixture
def subscribed(anna) -> Subscription:
    subscription = subscription_ensure(resource=anna)
    assert subscription is not None
    MailboxState.objects.filter(resource=anna).update(full_round_needed=False, round_due_at=None)
    return subscription


def calls(graph: Any, method: str, prefix: str = "/subscriptions") -> list[str]:
    return [c.url for c in graph.calls if c.method == method and c.url.startswith(prefix)]


def mailbox_state(resource_id: int) -> MailboxState:
    return MailboxState.objects.get(resource_id=resource_id)


def fake_subscription(graph: Any, subscription: Subscription) -> Any:
    return graph.live_subscription(subscription.subscription_id)


# --- creating -----------------------------------------------------------------------------


def test_it_subscribes_once_graph_validated_the_endpoint(graph, anna, live_server):
    subscription = subscription_ensure(resource=anna)

    assert subscription is not None
    anna.refresh_from_db()
    user_id = graph.find_user(ANNA)["id"]
    assert anna.graph_user_id == user_id
    at_graph = fake_subscription(graph, subscription)
    assert at_graph.resource == subscription.resource_path == f"/users/{user_id}/events"
    assert at_graph.change_type == "created,updated,deleted"
    assert at_graph.notification_url == live_server.url + NOTIFICATIONS_PATH
    assert at_graph.lifecycle_url == live_server.url + LIFECYCLE_PATH
    left = subscription.expires_at - timezone.now()
    assert timedelta(minutes=4190) < left <= timedelta(minutes=4230)
    assert abs(at_graph.expiration - subscription.expires_at) < timedelta(seconds=1)
    state = mailbox_state(anna.pk)
    assert state.full_round_needed and state.round_due_at is not None  # nothing missed
    assert SyncLogEntry.objects.filter(kind="subscription", direction="inbound",
                                       message__startswith="Subscribed").count() == 1


@pytest.mark.parametrize("path", [NOTIFICATIONS_PATH, LIFECYCLE_PATH])
def test_graphs_validation_request_gets_its_token_back(live_server, path):
    ok, why = graph_fake.notify.validate(live_server.url + path, "")
    assert (ok, why) == (True, "")


def test_only_a_hash_of_the_client_state_is_stored(graph, subscribed):
    secret = fake_subscription(graph, subscribed).client_state
    assert len(secret) >= 40
    assert subscribed.client_state_hash == hashlib.sha256(secret.encode()).hexdigest()
    row = Subscription.objects.filter(pk=subscribed.pk).values().get()
    logged = [json.dumps([e.message, e.hint, e.detail]) for e in SyncLogEntry.objects.all()]
    assert not any(secret in str(value) for value in [*row.values(), *logged])


def test_ensuring_again_keeps_the_live_subscription(graph, subscribed):
    graph.reset_counters()
    assert subscription_ensure(resource=subscribed.resource) == subscribed
    assert calls(graph, "POST") == []
    assert len(graph.subscriptions) == 1


def test_a_public_base_url_graph_cannot_reach_is_a_clear_error(graph, anna, settings):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"  # nothing listens there

    assert subscription_ensure(resource=anna) is None

    assert Subscription.objects.count() == 0
    assert graph.subscriptions == {}
    entry = SyncLogEntry.objects.get(kind="error")
    assert entry.direction == "inbound" and entry.resource == anna
    assert entry.message.startswith(f"Could not create the mailbox subscription of {anna}: "
                                    "Microsoft Graph answered HTTP 400")
    assert "Subscription validation request failed" in entry.message
    assert entry.hint.startswith("Microsoft Graph could not validate "
                                 "http://127.0.0.1:9/api/v1/exchange/notifications/")
    assert "PUBLIC_BASE_URL" in entry.hint


def test_nothing_is_subscribed_without_public_base_url(graph, anna, settings):
    settings.PUBLIC_BASE_URL = ""
    assert subscription_ensure(resource=anna) is None
    summary = subscriptions_sync()
    assert summary.created == 0 and "PUBLIC_BASE_URL is not set" in summary.note
    assert graph.subscriptions == {}


def test_the_schedule_subscribes_synced_mailboxes_only(graph, anna):
    resource(graph, "R2", BOB, sync=False)
    Resource.objects.create(source_app="BCPROD", resource_no="R3", sync_enabled=True)  # no mail

    assert renew_subscriptions_task() == "1 created, 0 renewed, 0 removed, 0 failed."

    assert list(Subscription.objects.values_list("resource__resource_no", flat=True)) == ["R1"]
    assert len(graph.subscriptions) == 1


# --- renewing -----------------------------------------------------------------------------


def test_the_schedule_renews_well_before_the_expiry(graph, subscribed):
    Subscription.objects.filter(pk=subscribed.pk).update(
        expires_at=timezone.now() + timedelta(hours=2))
    graph.reset_counters()

    summary = subscriptions_sync()

    assert (summary.renewed, summary.created, summary.failed) == (1, 0, 0)
    assert calls(graph, "PATCH") == [f"/subscriptions/{subscribed.subscription_id}"]
    subscribed.refresh_from_db()
    assert subscribed.expires_at - timezone.now() > timedelta(hours=69)
    assert subscribed.renewed_at is not None
    assert abs(fake_subscription(graph, subscribed).expiration - subscribed.expires_at) < (
        timedelta(seconds=1))


def test_a_subscription_far_from_its_expiry_is_left_alone(graph, subscribed):
    graph.reset_counters()
    summary = subscriptions_sync()
    assert (summary.renewed, summary.created, summary.removed) == (0, 0, 0)
    assert calls(graph, "PATCH") == [] and calls(graph, "POST") == []


def test_a_renewal_graph_no_longer_knows_recreates_it_with_a_full_round(graph, subscribed):
    del graph.subscriptions[subscribed.subscription_id]  # Graph dropped it

    assert subscription_renew(subscription=subscribed) is True

    new = Subscription.objects.get()
    assert new.subscription_id != subscribed.subscription_id
    assert fake_subscription(graph, new) is not None
    assert mailbox_state(new.resource_id).full_round_needed
    assert SyncLogEntry.objects.filter(message__contains="no longer exists at Microsoft Graph"
                                       ).exists()


def test_a_failed_renewal_is_recorded_on_the_subscription(graph, subscribed):
    graph.fail_item("/subscriptions/", status=403, code="ErrorAccessDenied",
                    message="Access is denied.")

    assert subscription_renew(subscription=subscribed) is False

    subscribed.refresh_from_db()
    assert subscribed.last_error.startswith(f"Could not renew the mailbox subscription of "
                                            f"{subscribed.resource}: Microsoft Graph answered "
                                            "HTTP 403")
    assert "Calendars.ReadWrite" in SyncLogEntry.objects.get(kind="error").hint


# --- removing -----------------------------------------------------------------------------


def test_turning_sync_off_deletes_the_subscription_at_graph(graph, subscribed):
    Resource.objects.filter(pk=subscribed.resource_id).update(sync_enabled=False)
    graph.reset_counters()

    summary = subscriptions_sync()

    assert summary.removed == 1
    assert calls(graph, "DELETE") == [f"/subscriptions/{subscribed.subscription_id}"]
    assert graph.subscriptions == {}
    assert Subscription.objects.count() == 0


def test_switching_exchange_off_removes_every_subscription(graph, subscribed):
    assert subscription_ensure(resource=resource(graph, "R2", BOB)) is not None
    assert len(graph.subscriptions) == 2
    ExchangeSettings.objects.filter(pk=1).update(enabled=False)

    summary = subscriptions_sync()

    assert summary.removed == 2 and summary.note == "Exchange sync is off."
    assert graph.subscriptions == {}
    assert Subscription.objects.count() == 0


def test_removing_one_graph_already_forgot_counts_as_done(graph, subscribed):
    graph.subscriptions.clear()
    assert subscription_remove(resource=subscribed.resource) is True
    assert Subscription.objects.count() == 0


# --- notifications from the fake ------------------------------------------------------------


def test_a_change_in_outlook_reaches_the_endpoint_and_schedules_a_round(graph, subscribed):
    graph.outlook_create(ANNA, subject="Dentist")

    delivery = graph.wait_notifications(1, where=lambda n: n["kind"] == "change")[0]

    assert delivery["status"] == 202
    stored = Notification.objects.get()
    assert (stored.kind, stored.change_type, stored.subscription) == (
        "change", "created", subscribed)
    assert mailbox_state(subscribed.resource_id).round_due_at is not None
    subscribed.refresh_from_db()
    assert subscribed.last_notification_at is not None


def lifecycle(graph: Any, subscription: Subscription, event: str) -> Notification:
    """Have the fake post the lifecycle event; returns the stored notification (its task
    queued)."""
    task_queue.purge()
    assert graph.send_lifecycle(subscription.subscription_id, event) == 202
    stored = Notification.objects.get(kind="lifecycle")
    assert stored.change_type == event and stored.processed_at is None
    assert ("exchange_sync.tasks.lifecycle_task", (stored.pk,)) in task_queue.taken()
    return stored


def test_reauthorization_required_renews_the_subscription(graph, subscribed):
    stored = lifecycle(graph, subscribed, "reauthorizationRequired")
    graph.reset_counters()

    assert lifecycle_task(stored.pk) == "renewed"

    assert calls(graph, "PATCH") == [f"/subscriptions/{subscribed.subscription_id}"]
    subscribed.refresh_from_db()
    assert subscribed.renewed_at is not None
    assert lifecycle_task(stored.pk) == "nothing to do"  # delivered twice: handled once
    assert SyncLogEntry.objects.filter(
        message__startswith="Lifecycle notification reauthorizationRequired").count() == 1


def test_subscription_removed_recreates_it_with_a_full_round(graph, subscribed):
    stored = lifecycle(graph, subscribed, "subscriptionRemoved")
    assert graph.subscriptions == {}  # Graph removed it

    assert lifecycle_task(stored.pk) == "recreated"

    new = Subscription.objects.get()
    assert new.subscription_id != subscribed.subscription_id
    assert list(graph.subscriptions) == [new.subscription_id]
    assert mailbox_state(new.resource_id).full_round_needed


def test_missed_schedules_a_full_round(graph, subscribed):
    stored = lifecycle(graph, subscribed, "missed")
    assert not mailbox_state(subscribed.resource_id).full_round_needed

    assert lifecycle_task(stored.pk) == "full delta round scheduled"

    state = mailbox_state(subscribed.resource_id)
    assert state.full_round_needed and state.round_due_at is not None
    assert Subscription.objects.get() == subscribed  # untouched


def test_the_schedule_handles_a_lifecycle_notification_whose_task_was_lost(graph, subscribed):
    stored = lifecycle(graph, subscribed, "missed")
    Notification.objects.filter(pk=stored.pk).update(
        received_at=timezone.now() - timedelta(minutes=5))

    summary = subscriptions_sync()

    assert summary.lifecycle == 1
    assert mailbox_state(subscribed.resource_id).full_round_needed
    stored.refresh_from_db()
    assert stored.processed_at is not None


# --- admin --------------------------------------------------------------------------------


def test_the_subscription_admin_lists_and_shows_the_expiry(admin_client, subscribed):
    Subscription.objects.filter(pk=subscribed.pk).update(
        expires_at=timezone.now() + timedelta(hours=5, minutes=40), last_error="It broke")
    page = admin_client.get(reverse("admin:exchange_sync_subscription_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    assert subscribed.subscription_id in html and "It broke" in html
    assert '<span style="color:#ba2121">in 6 h</span>' in html  # under RENEW_BEFORE: red
    detail = admin_client.get(reverse("admin:exchange_sync_subscription_change",
                                      args=[subscribed.pk]))
    assert detail.status_code == 200
    assert subscribed.resource_path in detail.content.decode()


def test_the_admin_renews_now(admin_client, graph, subscribed):
    graph.reset_counters()
    response = admin_client.post(
        reverse("admin:exchange_sync_subscription_changelist"),
        {"action": "renew_now", "_selected_action": [subscribed.pk]}, follow=True)
    assert "1 subscription(s) renewed." in response.content.decode()
    assert len(calls(graph, "PATCH")) == 1


def test_the_admin_recreates(admin_client, graph, subscribed):
    response = admin_client.post(
        reverse("admin:exchange_sync_subscription_changelist"),
        {"action": "recreate", "_selected_action": [subscribed.pk]}, follow=True)
    assert "1 subscription(s) recreated." in response.content.decode()
    new = Subscription.objects.get()
    assert new.subscription_id != subscribed.subscription_id
    assert list(graph.subscriptions) == [new.subscription_id]


def test_a_failing_admin_action_says_so(admin_client, graph, subscribed):
    graph.fail_item("/subscriptions/", status=403)
    response = admin_client.post(
        reverse("admin:exchange_sync_subscription_changelist"),
        {"action": "renew_now", "_selected_action": [subscribed.pk]}, follow=True)
    assert ("0 subscription(s) renewed. 1 failed: see their last error and the sync log."
            in response.content.decode())


def test_the_notification_admin_is_read_only(admin_client, graph, subscribed):
    stored = lifecycle(graph, subscribed, "missed")
    page = admin_client.get(reverse("admin:exchange_sync_notification_changelist"))
    assert page.status_code == 200
    assert "missed" in page.content.decode()
    detail = admin_client.get(reverse("admin:exchange_sync_notification_change",
                                      args=[stored.pk]))
    assert detail.status_code == 200
    html = detail.content.decode()
    assert "lifecycleEvent" in html and "clientState" not in html
    assert admin_client.get(reverse("admin:exchange_sync_notification_add")).status_code == 403
