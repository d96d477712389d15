"""Every allowed type x API type x auth type (DESIGN.md's table), end to end against the fakes:
"test connection" is green, a change is written back, and no secret reaches the logs."""

from __future__ import annotations

import logging

import pytest

from connectors import services
from connectors.backoffices import registry, soap_wsdl
from connectors.backoffices.auth import BC_SCOPE
from connectors.compat import allowed_combinations
from connectors.models import Connector
from tests.fakes import bc_rest, token_server, webhook_receiver
from tests.fakes.auth_gate import AuthPolicy
from tests.fakes.soap_server import soap_server

from . import samples

pytestmark = pytest.mark.django_db

LOGIN, PASSWORD = "CRONUS\\svc-matrix", "Matrix-pass-0042"
SERVICE_LOGIN, SERVICE_PASSWORD = "svc-dimeconnect", "Service-pass-7788"
SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WEBHOOK_SCOPE = "api://dimeconnect-hooks/.default"
SECRETS = (PASSWORD, SERVICE_PASSWORD, SIGNING_SECRET, token_server.CLIENT_SECRET)


def policy_for(connector_type: str, auth_type: str) -> AuthPolicy:
    if auth_type == "none":
        return AuthPolicy("basic", SERVICE_LOGIN, SERVICE_PASSWORD)
    if auth_type in ("basic", "ntlm"):
        return AuthPolicy({"basic": "basic", "ntlm": "ntlm"}[auth_type], LOGIN, PASSWORD)
    if auth_type == "windows":
        return AuthPolicy("negotiate", LOGIN, PASSWORD)
    if connector_type == "webhook":
        return AuthPolicy("bearer", audience=WEBHOOK_SCOPE if auth_type == "entra_id" else "")
    return AuthPolicy("bearer", audience=BC_SCOPE)


def fake_for(api_type: str, connector_type: str, policy: AuthPolicy):
    if connector_type == "webhook":
        return webhook_receiver.make(secrets=[SIGNING_SECRET], auth=policy)
    if api_type == "rest":
        return bc_rest.make(auth=policy)
    return soap_server(policy=policy)


def uri_for(server, api_type: str, connector_type: str) -> str:
    if connector_type == "webhook":
        return server.url + "/hooks/appointments"
    if api_type == "rest":
        return bc_rest.entity_set_url(server)
    return server.url + "/BC/WS/CRONUS/Page/Appointment"


def delivered(server, api_type: str, connector_type: str) -> list:
    if connector_type == "webhook":
        return [d for d in server.state.deliveries if d.json()["type"].startswith("appointment.")]
    if api_type == "rest":
        return server.state.records
    return server.state.records()


@pytest.mark.parametrize(("connector_type", "api_type", "auth_type"), allowed_combinations())
def test_every_allowed_combination_tests_green_and_writes_back(
    connector_type, api_type, auth_type, entra, settings, caplog
):
    caplog.set_level(logging.DEBUG)
    settings.BACKOFFICE_SERVICE_LOGIN = SERVICE_LOGIN
    settings.BACKOFFICE_SERVICE_PASSWORD = SERVICE_PASSWORD
    soap_wsdl.forget()
    fields = {}
    if auth_type in ("basic", "ntlm", "windows"):
        fields = {"login": LOGIN, "password": PASSWORD}
    elif auth_type != "none":
        fields = samples.token_fields(entra, auth_type)
        if connector_type == "webhook" and auth_type == "entra_id":
            fields["scope"] = WEBHOOK_SCOPE
    with fake_for(api_type, connector_type, policy_for(connector_type, auth_type)) as server:
        connector = services.connector_save(Connector(
            name=f"{connector_type} {api_type} {auth_type}", type=connector_type,
            api_type=api_type, auth_type=auth_type, source_app="BCPROD",
            uri=uri_for(server, api_type, connector_type), signing_secret=SIGNING_SECRET,
            **fields,
        ))
        result = services.connector_test_connection(connector)
        assert result.ok, (result.message, result.hint)
        registry.client_for(connector).send(samples.change("update"))
        assert len(delivered(server, api_type, connector_type)) == 1
    stored = Connector.objects.get(pk=connector.pk)
    logged = caplog.text + str(stored.last_test_result) + stored.last_test_message
    for secret in SECRETS:
        assert secret not in logged
