"""Connector services: defaults filled before validation and saving."""

from __future__ import annotations

import base64

import pytest

from connectors import services
from connectors.models import Connector

pytestmark = pytest.mark.django_db


def webhook(**extra) -> Connector:
    values = {
        "name": "Hook",
        "type": "webhook",
        "api_type": "rest",
        "auth_type": "basic",
        "uri": "http://127.0.0.1:9/hook",
        "source_app": "BCPROD",
        "login": "svc",
        "password": "a-long-basic-password",
    }
    values.update(extra)
    return Connector(**values)


def test_a_new_webhook_gets_a_standard_webhooks_signing_secret():
    connector = services.connector_save(webhook())
    secret = Connector.objects.get(pk=connector.pk).signing_secret
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24


def test_an_existing_signing_secret_is_kept():
    connector = services.connector_save(webhook(signing_secret="whsec_" + "A" * 32))
    assert connector.signing_secret == "whsec_" + "A" * 32


def test_switching_the_auth_type_drops_the_secrets_it_no_longer_uses():
    connector = services.connector_save(webhook())
    connector.auth_type = "oauth2_post"
    connector.token_url = "https://127.0.0.1:9443/token"
    connector.client_id = "app"
    connector.client_secret = "a-client-secret-value"
    services.connector_save(connector)
    stored = Connector.objects.get(pk=connector.pk)
    assert stored.password == "" and stored.client_secret == "a-client-secret-value"


def test_a_connector_that_is_no_longer_a_webhook_loses_its_signing_secret():
    connector = services.connector_save(webhook())
    connector.type, connector.api_type = "nav", "soap"
    services.connector_save(connector)
    assert Connector.objects.get(pk=connector.pk).signing_secret == ""
