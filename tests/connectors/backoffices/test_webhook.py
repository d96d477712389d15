"""The webhook client against the loopback receiver; signatures checked with `standardwebhooks`.

Standard Webhooks (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256>`; during a secret rotation two signatures.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from connectors import services
from connectors.backoffices.base import BackOfficeError
from connectors.backoffices.redact import MASK
from connectors.backoffices.webhook import WebhookClient
from connectors.models import Connector
from tests.fakes import webhook_receiver
from tests.fakes.auth_gate import AuthPolicy

from . import samples

pytestmark = pytest.mark.django_db

LOGIN = "svc-dime"
PASSWORD = "webhook-basic-password-7781"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def receiver():
    with webhook_receiver.make() as server:
        yield server


def make_webhook(uri: str, **extra: Any) -> Connector:
    values: dict[str, Any] = {
        "name": "Planning hook", "type": "webhook", "api_type": "rest", "auth_type": "none",
        "uri": uri, "source_app": "BCPROD",
    }
    values.update(extra)
    return services.connector_save(Connector(**values))


def hook_url(server) -> str:
    return server.url + "/hooks/dime"


def verified(secret: str, delivery) -> Any:
    """The delivery's body, as the reference library verifies it (raises when it does not)."""
    return Webhook(secret).verify(delivery.body, delivery.headers)


def signatures(delivery) -> list[str]:
    return delivery.header("webhook-signature").split(" ")


# --- Body and signature -----------------------------------------------------------------------


def test_it_posts_the_canonical_body_signed_so_the_reference_library_verifies_it(receiver):
    connector = make_webhook(hook_url(receiver))
    change = samples.change("create")

    result = WebhookClient(connector).send(change)

    assert result.status_code == 200
    [delivery] = receiver.state.deliveries
    assert delivery.path == "/hooks/dime"
    assert delivery.header("content-type") == "application/json"
    assert delivery.header("webhook-id") == change.dispatch_id
    assert verified(connector.signing_secret, delivery) == {
        "type": "appointment.created",
        "timestamp": "2026-11-21T09:00:00Z",
        "data": samples.appointment(),
    }


@pytest.mark.parametrize(
    ("action", "event_type"),
    [("create", "appointment.created"), ("update", "appointment.updated"),
     ("delete", "appointment.deleted")],
)
def test_each_action_is_posted_as_its_event_type(receiver, action, event_type):
    connector = make_webhook(hook_url(receiver))
    WebhookClient(connector).send(samples.change(action))
    assert receiver.state.deliveries[0].json()["type"] == event_type


def test_it_posts_the_dimescheduler_pascalcase_body_when_the_connector_chooses_that_style(
    receiver,
):
    connector = make_webhook(hook_url(receiver), payload_style="dimescheduler")

    WebhookClient(connector).send(samples.change("update"))

    body = verified(connector.signing_secret, receiver.state.deliveries[0])
    assert body["type"] == "appointment.updated"
    data = body["data"]
    assert data["AppointmentGuid"] == samples.GUID
    assert data["Subject"] == "Boiler service — Müller"
    assert (data["StartDate"], data["EndDate"]) == ("2026-11-23T08:00:00Z", "2026-11-23T10:30:00Z")
    assert data["Task"] == {
        "TaskNo": "T-10",
        "Job": {"SourceApp": "BCPROD", "SourceType": "SERVICE", "JobNo": "J-1001"},
    }
    assert data["Assignments"] == [
        {"Resource": {"ResourceNo": "R-ANN", "Email": "ann@example.com"}},
        {"Resource": {"ResourceNo": "R-BOB", "Email": "bob@example.com"}},
    ]
    assert "guid" not in data and "subject" not in data


def test_the_signature_is_one_v1_hmac_over_id_timestamp_and_body_with_a_current_timestamp(
    receiver,
):
    connector = make_webhook(hook_url(receiver))
    WebhookClient(connector).send(samples.change())

    [delivery] = receiver.state.deliveries
    assert abs(int(delivery.header("webhook-timestamp")) - time.time()) < 5
    [signature] = signatures(delivery)
    version, encoded = signature.split(",")
    assert version == "v1" and len(base64.b64decode(encoded)) == 32  # SHA-256


def test_a_receiver_that_checks_signatures_accepts_the_delivery(receiver):
    connector = make_webhook(hook_url(receiver))
    receiver.state.secrets = [connector.signing_secret]

    assert WebhookClient(connector).send(samples.change()).status_code == 200
    assert len(receiver.state.deliveries) == 1


def test_a_receiver_with_another_secret_refuses_it_and_the_hint_names_the_signing_secret(
    receiver,
):
    connector = make_webhook(hook_url(receiver))
    receiver.state.secrets = [services.signing_secret_generate()]

    with pytest.raises(BackOfficeError) as caught:
        WebhookClient(connector).send(samples.change())

    error = caught.value
    assert error.permanent and error.status_code == 401
    assert "No matching signature found" in error.message
    assert "signing secret" in error.hint
    assert receiver.state.deliveries == []


def test_the_receiver_refuses_a_timestamp_more_than_five_minutes_old(receiver):
    """The fake's replay check, so the signature tests above mean something."""
    import httpx

    secret = services.signing_secret_generate()
    receiver.state.secrets = [secret]
    body, stamp = b'{"type":"appointment.created"}', int(time.time()) - 301
    signature = Webhook(secret).sign("msg_1", datetime.fromtimestamp(stamp, UTC), body.decode())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(stamp),
               "webhook-signature": signature}

    answer = httpx.post(hook_url(receiver), content=body, headers=headers)

    assert answer.status_code == 401 and "too old" in answer.json()["error"]["message"]


# --- Secret rotation --------------------------------------------------------------------------


def test_after_a_rotation_both_the_old_and_the_new_secret_verify(receiver):
    connector = make_webhook(hook_url(receiver))
    old = connector.signing_secret

    services.webhook_rotate_signing_secret(connector)
    connector = Connector.objects.get(pk=connector.pk)
    WebhookClient(connector).send(samples.change())

    [delivery] = receiver.state.deliveries
    assert connector.signing_secret != old and connector.previous_signing_secret == old
    assert len(signatures(delivery)) == 2
    assert verified(old, delivery) == verified(connector.signing_secret, delivery)


def test_a_receiver_still_on_the_old_secret_keeps_accepting_during_the_overlap(receiver):
    connector = make_webhook(hook_url(receiver))
    receiver.state.secrets = [connector.signing_secret]

    services.webhook_rotate_signing_secret(connector)

    assert WebhookClient(connector).send(samples.change()).status_code == 200


def test_24_hours_after_a_rotation_only_the_new_secret_signs(receiver):
    connector = make_webhook(hook_url(receiver))
    old = connector.signing_secret
    services.webhook_rotate_signing_secret(connector)
    Connector.objects.filter(pk=connector.pk).update(
        signing_secret_rotated_at=timezone.now() - timedelta(hours=24, seconds=1)
    )
    connector = Connector.objects.get(pk=connector.pk)

    WebhookClient(connector).send(samples.change())

    [delivery] = receiver.state.deliveries
    assert len(signatures(delivery)) == 1
    verified(connector.signing_secret, delivery)
    with pytest.raises(WebhookVerificationError):
        verified(old, delivery)


def test_saving_after_the_overlap_drops_the_previous_secret(receiver):
    connector = make_webhook(hook_url(receiver))
    services.webhook_rotate_signing_secret(connector)
    connector.signing_secret_rotated_at = timezone.now() - timedelta(hours=25)

    services.connector_save(connector)

    assert Connector.objects.get(pk=connector.pk).previous_signing_secret == ""


def test_a_connector_that_stops_being_a_webhook_loses_its_previous_signing_secret(receiver):
    connector = make_webhook(hook_url(receiver))
    services.webhook_rotate_signing_secret(connector)
    connector.type, connector.api_type = "bc_onprem", "rest"

    services.connector_save(connector)

    stored = Connector.objects.get(pk=connector.pk)
    assert stored.signing_secret == "" and stored.previous_signing_secret == ""


def test_rotating_a_connector_that_is_not_a_webhook_is_refused():
    connector = services.connector_save(Connector(
        name="BC", type="bc_onprem", api_type="rest", auth_type="none",
        uri="http://127.0.0.1:9/api", source_app="BCPROD",
    ))
    with pytest.raises(ValidationError, match="not a webhook"):
        services.webhook_rotate_signing_secret(connector)


def test_the_admin_action_rotates_webhooks_skips_the_rest_and_shows_each_new_secret_once(
    admin_client,
):
    hook = make_webhook("http://127.0.0.1:9/hook")
    other = services.connector_save(Connector(
        name="BC", type="bc_onprem", api_type="rest", auth_type="none",
        uri="http://127.0.0.1:9/api", source_app="BCPROD",
    ))
    old = hook.signing_secret

    response = admin_client.post(
        reverse("admin:connectors_connector_changelist"),
        {"action": "rotate_signing_secrets", "_selected_action": [hook.pk, other.pk]},
    )

    hook.refresh_from_db()
    assert hook.previous_signing_secret == old and hook.signing_secret != old
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert hook.signing_secret in page and old not in page
    assert [str(m) for m in response.context["messages"]] == [
        "Rotated the signing secret of 1 webhook connector(s); each old secret keeps signing "
        "beside the new one for 24 hours. Skipped 1 connector(s) that are not webhooks."
    ]


def test_the_admin_action_on_no_webhook_only_says_it_skipped_them(admin_client):
    other = services.connector_save(Connector(
        name="BC", type="bc_onprem", api_type="rest", auth_type="none",
        uri="http://127.0.0.1:9/api", source_app="BCPROD",
    ))
    response = admin_client.post(
        reverse("admin:connectors_connector_changelist"),
        {"action": "rotate_signing_secrets", "_selected_action": [other.pk]},
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]] == [
        "Rotated the signing secret of 0 webhook connector(s). "
        "Skipped 1 connector(s) that are not webhooks."
    ]


# --- Probe ------------------------------------------------------------------------------------


def test_the_probe_posts_a_signed_connector_test_event_without_business_data(receiver):
    connector = make_webhook(hook_url(receiver))
    receiver.state.secrets = [connector.signing_secret]

    result = WebhookClient(connector).probe()

    assert result.status_code == 200
    assert "connector.test" in result.detail
    [delivery] = receiver.state.deliveries
    body = verified(connector.signing_secret, delivery)
    assert body["type"] == "connector.test"
    assert body["data"] == {"connector": "Planning hook"}
    assert delivery.header("webhook-id").startswith("msg_test_")


# --- Auth -------------------------------------------------------------------------------------


def test_basic_auth_with_the_right_password_is_accepted():
    with webhook_receiver.make(auth=AuthPolicy("basic", LOGIN, PASSWORD)) as server:
        connector = make_webhook(hook_url(server), auth_type="basic", login=LOGIN,
                                 password=PASSWORD)
        assert WebhookClient(connector).send(samples.change()).status_code == 200


def test_basic_auth_with_a_wrong_password_fails_permanently_with_a_credentials_hint():
    with webhook_receiver.make(auth=AuthPolicy("basic", LOGIN, PASSWORD)) as server:
        connector = make_webhook(hook_url(server), auth_type="basic", login=LOGIN,
                                 password="not-the-password")
        with pytest.raises(BackOfficeError) as caught:
            WebhookClient(connector).send(samples.change())
    assert caught.value.permanent and caught.value.status_code == 401
    assert "credentials" in caught.value.hint


@pytest.mark.parametrize("auth_type", ["entra_id", "oauth2_basic", "oauth2_post"])
def test_each_token_auth_type_sends_a_bearer_token_the_receiver_accepts(entra, auth_type):
    scope = "api://dime-hooks/.default"
    with webhook_receiver.make(auth=AuthPolicy("bearer", audience=scope)) as server:
        connector = make_webhook(hook_url(server), auth_type=auth_type, scope=scope,
                                 **samples.token_fields(entra, auth_type))
        result = WebhookClient(connector).send(samples.change())
        [delivery] = server.state.deliveries

    assert result.status_code == 200
    assert entra.state.client_auth == [samples.CLIENT_AUTH[auth_type]]
    token = delivery.header("authorization").removeprefix("Bearer ")
    assert result.request is not None and result.request.headers["authorization"] == MASK
    assert token not in str(result.request)


# --- Failures ---------------------------------------------------------------------------------


def test_a_5xx_answer_is_transient(receiver):
    receiver.fail(status=503, body=b"Service Unavailable")
    with pytest.raises(BackOfficeError) as caught:
        WebhookClient(make_webhook(hook_url(receiver))).send(samples.change())
    assert not caught.value.permanent and caught.value.status_code == 503


def test_a_429_is_transient_and_keeps_the_retry_after(receiver):
    receiver.fail(status=429, headers={"Retry-After": "90"})
    with pytest.raises(BackOfficeError) as caught:
        WebhookClient(make_webhook(hook_url(receiver))).send(samples.change())
    assert not caught.value.permanent and caught.value.retry_after == 90


def test_a_redirect_is_permanent_and_names_where_it_points(receiver):
    receiver.fail(status=308, headers={"Location": "https://hooks.example.test/new"}, body=b"")
    with pytest.raises(BackOfficeError) as caught:
        WebhookClient(make_webhook(hook_url(receiver))).send(samples.change())
    assert caught.value.permanent
    assert "redirects to https://hooks.example.test/new" in caught.value.hint


def test_a_hanging_receiver_is_cut_at_the_connectors_timeout(receiver):
    receiver.fail(hang=True)
    connector = make_webhook(hook_url(receiver), timeout_s=1)
    started = time.monotonic()
    with pytest.raises(BackOfficeError) as caught:
        WebhookClient(connector).send(samples.change())
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 2.5
    assert caught.value.error_class == "Timeout" and not caught.value.permanent
    assert "within 1 s" in caught.value.message


# --- Secrets ----------------------------------------------------------------------------------


def test_no_secret_reaches_the_request_record_or_the_excerpt_or_the_logs(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    connector = make_webhook(hook_url(receiver), auth_type="basic", login=LOGIN,
                             password=PASSWORD)
    secrets = (PASSWORD, connector.signing_secret)
    receiver.fail(status=200, body=f'{{"echo": "{PASSWORD} {connector.signing_secret}"}}'.encode())

    result = WebhookClient(connector).send(samples.change())

    record = result.request
    assert record is not None
    assert record.headers["authorization"] == MASK
    assert record.headers["webhook-signature"] == MASK
    assert record.headers["webhook-id"] and record.method == "POST"
    stored = f"{record.url} {record.headers} {record.body} {result.response_excerpt}"
    for text in (stored, caplog.text):
        assert not any(secret in text for secret in secrets)


def test_no_secret_reaches_the_error_message_hint_or_excerpt(receiver):
    connector = make_webhook(hook_url(receiver), auth_type="basic", login=LOGIN,
                             password=PASSWORD)
    echoed = f"bad login {PASSWORD}; secret {connector.signing_secret}"
    receiver.fail(status=400, body=f'{{"error": {{"code": "Bad", "message": "{echoed}"}}}}'
                  .encode())

    with pytest.raises(BackOfficeError) as caught:
        WebhookClient(connector).send(samples.change())

    error = caught.value
    shown = f"{error} {error.response_excerpt}"
    assert error.permanent and "bad login" in error.message
    assert PASSWORD not in shown and connector.signing_secret not in shown


def test_a_webhook_without_a_usable_signing_secret_fails_permanently_before_sending(receiver):
    connector = make_webhook(hook_url(receiver))
    connector.signing_secret = "whsec_not base64!"
    with pytest.raises(BackOfficeError) as caught:
        WebhookClient(connector).send(samples.change())
    assert caught.value.permanent and "signing secret" in caught.value.message
    assert "whsec_not" not in str(caught.value)
    assert receiver.requests == []


# --- Running alone ----------------------------------------------------------------------------


def test_the_receiver_runs_alone_and_verifies_with_the_secret_it_is_given():
    connector = make_webhook("http://127.0.0.1:9/hook")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.webhook_receiver", "--port", "0",
         "--secret", connector.signing_secret],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert "webhook_receiver listening on http://127.0.0.1:" in line
        connector.uri = line.split(" on ")[1].strip() + "/hook"
        assert WebhookClient(connector).send(samples.change()).status_code == 200
        assert samples.GUID in process.stdout.readline()  # it prints each delivery
    finally:
        process.terminate()
        process.wait(timeout=10)
