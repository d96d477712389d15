"""Test connection: timed steps (connect + TLS, token, probe), stored results and fix hints."""

from __future__ import annotations

import json
import time

import pytest
from django.core.management import call_command

from connectors import services
from connectors.models import Connector
from tests.fakes import bc_rest, token_server, webhook_receiver
from tests.fakes.auth_gate import AuthPolicy
from tests.fakes.server import FakeServer

from .samples import token_fields

pytestmark = pytest.mark.django_db

SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def save(**values) -> Connector:
    connector = Connector(source_app="BCPROD", **values)
    services.connector_save(connector)
    return connector


def webhook(url: str, **extra) -> Connector:
    return save(name="Hook", type="webhook", api_type="rest", auth_type="none", uri=url,
                signing_secret=SIGNING_SECRET, **extra)


def https_bc_rest(test_ca, **state) -> FakeServer:
    return FakeServer(bc_rest.BcRestHandler, tls=test_ca.server_context("bc", **state),
                      state=bc_rest.BcState(auth=AuthPolicy(scheme="bearer")))


def step_names(result) -> list[str]:
    return [step.name for step in result.steps]


def test_a_working_webhook_passes_connect_and_a_signed_probe_and_is_stored():
    with webhook_receiver.make(secrets=[SIGNING_SECRET]) as receiver:
        connector = webhook(receiver.url + "/hooks")
        result = services.connector_test_connection(connector)
        [probe] = receiver.requests
    assert result.ok, result.message
    assert step_names(result) == ["Resolve and connect", "Probe"]
    assert result.steps[0].detail.startswith(f"Connected to 127.0.0.1:{receiver.port}")
    assert "no TLS" in result.steps[0].detail
    assert probe.json()["type"] == "connector.test"
    stored = Connector.objects.get(pk=connector.pk)
    assert stored.last_test_ok is True and stored.last_tested_at is not None
    assert stored.last_test_result["steps"][1]["ok"] is True
    assert stored.last_test_message.startswith("The connection works")


def test_entra_id_over_https_shows_the_certificate_expiry_and_the_token_step(
    entra, test_ca
):
    with https_bc_rest(test_ca) as server:
        connector = save(
            name="BC online", type="bc_online", api_type="rest", auth_type="entra_id",
            uri=bc_rest.entity_set_url(server), **token_fields(entra, "entra_id"),
        )
        result = services.connector_test_connection(connector)
    assert result.ok, result.message
    assert step_names(result) == ["Resolve and connect", "Authenticate (token)", "Probe"]
    assert "certificate valid until" in result.steps[0].detail
    assert "days left" in result.steps[0].detail
    assert result.steps[1].detail.startswith("Token received (Bearer), valid for")
    assert all(step.duration_ms >= 0 for step in result.steps)


def test_a_certificate_about_to_expire_is_called_out(ca_bundle, test_ca):
    with FakeServer(webhook_receiver.WebhookReceiverHandler,
                    tls=test_ca.server_context("soon", days=5),
                    state=webhook_receiver.ReceiverState()) as receiver:
        result = services.connector_test_connection(webhook(receiver.url + "/hooks"))
    assert result.ok
    assert "renew it soon" in result.steps[0].detail


def test_an_expired_certificate_fails_the_connect_step_with_its_date(ca_bundle, test_ca):
    with FakeServer(webhook_receiver.WebhookReceiverHandler,
                    tls=test_ca.server_context("expired", expired=True),
                    state=webhook_receiver.ReceiverState()) as receiver:
        result = services.connector_test_connection(webhook(receiver.url + "/hooks"))
    assert not result.ok
    assert step_names(result) == ["Resolve and connect"]
    assert "the certificate's expiry date is" in result.steps[0].detail
    assert result.hint == "The server's TLS certificate has expired: renew it on the server."


def test_an_untrusted_ca_says_how_to_trust_it(test_ca):
    with FakeServer(webhook_receiver.WebhookReceiverHandler,
                    tls=test_ca.server_context("untrusted"),
                    state=webhook_receiver.ReceiverState()) as receiver:
        result = services.connector_test_connection(webhook(receiver.url + "/hooks"))
    assert not result.ok
    assert "HTTP_CA_BUNDLE" in result.hint


def test_a_wrong_client_secret_fails_at_the_token_step_with_the_aadsts_hint(entra, test_ca):
    with https_bc_rest(test_ca) as server:
        fields = {**token_fields(entra, "entra_id"), "client_secret": "wrong-secret-value-1234"}
        connector = save(name="BC online", type="bc_online", api_type="rest",
                         auth_type="entra_id", uri=bc_rest.entity_set_url(server), **fields)
        result = services.connector_test_connection(connector)
    assert not result.ok
    assert step_names(result) == ["Resolve and connect", "Authenticate (token)"]
    assert "AADSTS7000215" in result.steps[1].detail
    assert result.hint.startswith("The client secret is wrong")
    stored = Connector.objects.get(pk=connector.pk)
    assert stored.last_test_ok is False
    text = json.dumps(stored.last_test_result) + stored.last_test_message
    assert "wrong-secret-value-1234" not in text
    assert token_server.CLIENT_SECRET not in text


def test_wrong_basic_credentials_fail_the_probe_with_the_credentials_hint():
    policy = AuthPolicy(scheme="basic", login="svc", password="the-right-password")
    with bc_rest.make(auth=policy) as server:
        connector = save(name="BC", type="bc_onprem", api_type="rest", auth_type="basic",
                         uri=bc_rest.entity_set_url(server), login="svc",
                         password="not-the-password")
        result = services.connector_test_connection(connector)
    assert not result.ok
    assert step_names(result) == ["Resolve and connect", "Probe"]
    assert "HTTP 401" in result.steps[1].detail
    assert "password" in result.hint.lower()
    assert "not-the-password" not in json.dumps(result.as_dict())


def test_nothing_listening_fails_the_connect_step():
    with webhook_receiver.make() as receiver:
        url = receiver.url + "/hooks"
    result = services.connector_test_connection(webhook(url))  # the receiver is gone now
    assert not result.ok
    assert result.steps[0].detail.startswith("Cannot connect to 127.0.0.1")
    assert "firewall" in result.hint


def test_a_hanging_remote_is_answered_within_the_connectors_timeout():
    with webhook_receiver.make() as receiver:
        receiver.fail(hang=True)
        connector = webhook(receiver.url + "/hooks", timeout_s=2)
        started = time.monotonic()
        result = services.connector_test_connection(connector)
        elapsed = time.monotonic() - started
    assert not result.ok
    assert elapsed < 2 + 1.5, elapsed
    assert result.steps[-1].detail.startswith("No answer from 127.0.0.1")


def test_the_command_exits_0_when_it_works_and_prints_json(capsys):
    with webhook_receiver.make() as receiver:
        webhook(receiver.url + "/hooks")
        call_command("test_connector", "Hook", "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and [s["name"] for s in data["steps"]] == [
        "Resolve and connect", "Probe"]


def test_the_command_exits_1_with_the_hint_when_it_fails(capsys):
    with webhook_receiver.make(status=503) as receiver:
        webhook(receiver.url + "/hooks")
        with pytest.raises(SystemExit) as exited:
            call_command("test_connector", "Hook")
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert "FAIL Probe" in out and "HTTP 503" in out and "Fix: " in out


def test_the_command_names_an_unknown_connector():
    from django.core.management.base import CommandError

    webhook("http://127.0.0.1:9/hooks")
    with pytest.raises(CommandError) as caught:
        call_command("test_connector", "Nope")
    assert str(caught.value) == "No connector named 'Nope'. Known connectors: Hook."


def test_the_change_form_button_runs_the_test_and_shows_each_step(admin_client):
    with webhook_receiver.make() as receiver:
        connector = webhook(receiver.url + "/hooks")
        change = admin_client.get(f"/admin/connectors/connector/{connector.pk}/change/")
        assert 'id="test-connection"' in change.content.decode()
        response = admin_client.post(
            f"/admin/connectors/connector/{connector.pk}/test-connection/"
        )
    html = response.content.decode()
    assert response.status_code == 200
    assert "The connection works" in html
    assert "Resolve and connect" in html and "Probe" in html
    assert SIGNING_SECRET not in html
    listing = admin_client.get("/admin/connectors/connector/").content.decode()
    assert "connection OK" in listing


def test_the_test_page_refuses_get(admin_client):
    connector = webhook("http://127.0.0.1:9/hooks")
    response = admin_client.get(f"/admin/connectors/connector/{connector.pk}/test-connection/")
    assert response.status_code == 405


def test_the_bulk_action_summarises_ok_and_failing_connectors(admin_client):
    with webhook_receiver.make() as good, webhook_receiver.make(status=400) as bad:
        one = webhook(good.url + "/hooks")
        two = save(name="Bad hook", type="webhook", api_type="rest", auth_type="none",
                   uri=bad.url + "/hooks")
        response = admin_client.post(
            "/admin/connectors/connector/",
            {"action": "test_connections", "_selected_action": [one.pk, two.pk]},
            follow=True,
        )
    text = response.content.decode()
    assert "Tested 2 connector(s): 1 OK, 1 failing: Bad hook (Probe failed: " in text
    assert Connector.objects.get(pk=two.pk).last_test_ok is False
