"""The endpoints Microsoft Graph posts to: /api/v1/exchange/notifications/ and /lifecycle/.

Subscriptions are rows made here (their clientState known to the test); the handshake and the
deliveries by the fake Graph itself are in test_subscriptions.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from django.utils import timezone

from exchange_sync.models import MailboxState, Notification, Resource, Subscription
from exchange_sync.subscriptions import client_state_hash
from tests.exchange_sync import task_queue
from tests.exchange_sync.outbound_support import APP, configure_exchange

pytestmark = pytest.mark.django_db

NOTIFICATIONS = "/api/v1/exchange/notifications/"
LIFECYCLE = "/api/v1/exchange/lifecycle/"
SECRET = "the-client-state-of-sub-1"


@pytest.fixture
def subscription() -> Subscription:
    configure_exchange()
    resource = Resource.objects.create(source_app=APP, resource_no="R1",
                                       email="anna@contoso.test", sync_enabled=True,
                                       graph_user_id="user-1")
    return Subscription.objects.create(
        resource=resource, subscription_id="sub-1", client_state_hash=client_state_hash(SECRET),
        resource_path="/users/user-1/events", expires_at=timezone.now() + timedelta(days=2))


def change(subscription_id: str = "sub-1", client_state: Any = SECRET,
           change_type: str = "updated") -> dict[str, Any]:
    return {"subscriptionId": subscription_id, "clientState": client_state,
            "changeType": change_type, "resource": "Users/user-1/Events/AAMk1",
            "subscriptionExpirationDateTime": "2030-01-01T00:00:00.0000000Z",
            "tenantId": "tenant", "resourceData": {"id": "AAMk1"}}


def post(client: Any, url: str, body: Any) -> Any:
    return client.post(url, data=json.dumps(body), content_type="application/json")


def round_due(resource_id: int) -> bool:
    state = MailboxState.objects.filter(resource_id=resource_id).first()
    return state is not None and state.round_due_at is not None


def test_the_validation_token_is_echoed_exactly_as_text(client):
    token = "Validation: Testing client application reachability for subscription Request-Id: 1a"
    response = client.post(f"{NOTIFICATIONS}?validationToken={quote(token, safe='')}",
                           data=b"", content_type="text/plain; charset=utf-8")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == token


def test_the_lifecycle_endpoint_echoes_the_token_whatever_the_body(client):
    response = client.post(f"{LIFECYCLE}?validationToken=a%20b%3Ac",
                           data=b"{not json", content_type="application/json")
    assert response.status_code == 200
    assert response.content == b"a b:c"


def test_an_overlong_validation_token_is_refused(client):
    response = client.post(f"{NOTIFICATIONS}?validationToken={'x' * 1025}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"] == {
        "validationToken": ["Ensure this field has no more than 1024 characters."]}


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_only_post_is_allowed(client, method):
    response = getattr(client, method)(NOTIFICATIONS)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_good_change_notification_is_stored_and_schedules_a_round(client, subscription):
    response = post(client, NOTIFICATIONS, {"value": [change()]})
    assert response.status_code == 202
    assert response.content == b""
    stored = Notification.objects.get()
    assert (stored.kind, stored.change_type, stored.subscription) == (
        "change", "updated", subscription)
    assert "clientState" not in stored.payload
    assert SECRET not in json.dumps(stored.payload)
    assert stored.processed_at is not None
    assert round_due(subscription.resource_id)
    subscription.refresh_from_db()
    assert subscription.last_notification_at is not None


def test_many_changes_of_one_mailbox_are_all_stored_for_one_round(client, subscription):
    body = {"value": [change(change_type=kind) for kind in ("created", "updated", "deleted")],
            "validationTokens": ["eyJ0eXAiOiJKV1QifQ.e30.sig"]}  # rich notifications: ignored
    assert post(client, NOTIFICATIONS, body).status_code == 202
    assert Notification.objects.count() == 3
    assert MailboxState.objects.filter(resource_id=subscription.resource_id).count() == 1
    assert round_due(subscription.resource_id)


def test_a_wrong_client_state_is_refused_and_nothing_happens(client, subscription):
    response = post(client, NOTIFICATIONS, {"value": [change(client_state="guess")]})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "permission_denied"
    assert "unknown subscription or a wrong clientState" in error["message"]
    assert Notification.objects.count() == 0
    assert not round_due(subscription.resource_id)
    subscription.refresh_from_db()
    assert subscription.last_notification_at is None


def test_a_missing_client_state_is_refused(client, subscription):
    response = post(client, NOTIFICATIONS, {"value": [change(client_state=None)]})
    assert response.status_code == 403
    assert Notification.objects.count() == 0


def test_an_unknown_subscription_is_refused(client, subscription):
    response = post(client, NOTIFICATIONS, {"value": [change(subscription_id="sub-x")]})
    assert response.status_code == 403
    assert Notification.objects.count() == 0
    assert not round_due(subscription.resource_id)


def test_one_bad_item_refuses_the_whole_batch(client, subscription):
    body = {"value": [change(), change(client_state="wrong"), change()]}
    response = post(client, NOTIFICATIONS, body)
    assert response.status_code == 403
    assert "value.1" in response.json()["error"]["message"]
    assert Notification.objects.count() == 0
    assert not round_due(subscription.resource_id)


def test_bad_json_is_a_400_naming_the_problem(client, subscription):
    response = client.post(NOTIFICATIONS, data=b'{"value": [', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("JSON parse error")
    assert Notification.objects.count() == 0


@pytest.mark.parametrize(("body", "message"), [
    ({}, 'The body must be a JSON object with a "value" array of notifications.'),
    ([change()], 'The body must be a JSON object with a "value" array of notifications.'),
    ({"value": []}, '"value" must hold 1 to 1000 notifications.'),
    ({"value": ["x"]}, "value.0: a notification must be a JSON object."),
    ({"value": [{"clientState": SECRET, "changeType": "updated"}]},
     "value.0.subscriptionId: a string is required."),
    ({"value": [{"subscriptionId": "sub-1", "clientState": SECRET}]},
     "value.0: changeType or lifecycleEvent (a string) is required."),
])
def test_a_wrong_shape_is_a_400_naming_the_problem(client, subscription, body, message):
    response = post(client, NOTIFICATIONS, body)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == message
    assert Notification.objects.count() == 0


def test_a_body_over_the_api_limit_is_refused(client, subscription, settings):
    settings.API_MAX_BODY_BYTES = 200
    response = post(client, NOTIFICATIONS, {"value": [change()] * 5})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert Notification.objects.count() == 0


def test_a_body_that_is_not_json_is_refused(client, subscription):
    response = client.post(NOTIFICATIONS, data=b"value", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_a_lifecycle_notification_is_stored_and_its_task_queued_after_commit(
        client, subscription, django_capture_on_commit_callbacks):
    item = {"subscriptionId": "sub-1", "clientState": SECRET, "tenantId": "tenant",
            "lifecycleEvent": "missed",
            "subscriptionExpirationDateTime": "2030-01-01T00:00:00.0000000Z"}
    task_queue.purge()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, LIFECYCLE, {"value": [item]})
    assert response.status_code == 202
    stored = Notification.objects.get()
    assert (stored.kind, stored.change_type, stored.processed_at) == ("lifecycle", "missed", None)
    assert "clientState" not in stored.payload
    assert task_queue.taken() == [("exchange_sync.tasks.lifecycle_task", (stored.pk,))]
    assert not round_due(subscription.resource_id)  # the task decides, not the endpoint


def test_the_endpoints_are_in_the_openapi_schema_without_an_api_key(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    for path in (NOTIFICATIONS, LIFECYCLE):
        operation = schema["paths"][path]["post"]
        assert operation.get("security") in (None, [], [{}])
        assert operation["responses"]["200"]["content"]["text/plain"]["schema"]["type"] == (
            "string")
        assert {"202", "400", "403"} <= set(operation["responses"])
