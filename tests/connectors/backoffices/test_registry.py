"""The registry: every (type, API type) the connector table allows has a client class."""

from __future__ import annotations

import pytest

from connectors import compat
from connectors.backoffices import registry
from connectors.backoffices.base import BackOfficeClient, BackOfficeError
from connectors.models import Connector

ALLOWED = sorted({(kind, api) for kind, api, _ in compat.allowed_combinations()})
EXPECTED = {"webhook": "WebhookClient", "rest": "BcRestClient", "soap": "SoapClient"}


@pytest.mark.parametrize(("connector_type", "api_type"), ALLOWED)
def test_every_allowed_combination_gets_its_client(connector_type, api_type):
    connector = Connector(type=connector_type, api_type=api_type)

    client = registry.client_for(connector)

    assert isinstance(client, BackOfficeClient) and client.connector is connector
    expected = EXPECTED["webhook" if connector_type == "webhook" else api_type]
    assert type(client).__name__ == expected


def test_the_registry_lists_exactly_the_allowed_combinations():
    assert sorted(registry.CLIENTS) == ALLOWED


def test_an_unknown_combination_is_a_permanent_error_naming_it():
    with pytest.raises(BackOfficeError) as caught:
        registry.client_for(Connector(type="nav", api_type="rest"))
    assert caught.value.permanent
    assert caught.value.message == (
        "There is no client for a Microsoft Dynamics NAV connector with API type REST (JSON)."
    )
