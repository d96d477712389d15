"""The one map from a connector's (type, API type) to its client class.

Classes are named by dotted path and imported on first use: importing the registry does not
import zeep (SOAP) for a webhook, and a client module's import error shows up as that
connector's error, not as every connector's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

from connectors.compat import ApiType, ConnectorType

from .base import BackOfficeClient, BackOfficeError

if TYPE_CHECKING:
    from connectors.models import Connector

T, A = ConnectorType, ApiType
WEBHOOK = "connectors.backoffices.webhook.WebhookClient"
BC_REST = "connectors.backoffices.bc_rest.BcRestClient"
SOAP = "connectors.backoffices.soap.SoapClient"

CLIENTS: dict[tuple[str, str], str] = {
    (T.WEBHOOK, A.REST): WEBHOOK,
    (T.BC_ONPREM, A.REST): BC_REST,
    (T.BC_ONLINE, A.REST): BC_REST,
    (T.BC_ONPREM, A.SOAP): SOAP,
    (T.BC_ONLINE, A.SOAP): SOAP,
    (T.NAV, A.SOAP): SOAP,
}


def client_class(connector_type: str, api_type: str) -> type[BackOfficeClient]:
    """The client class for the combination; raises BackOfficeError (permanent) naming it when
    there is none."""
    path = CLIENTS.get((connector_type, api_type))
    if path is None:
        type_label = dict(ConnectorType.choices).get(connector_type, connector_type or "none")
        api_label = dict(ApiType.choices).get(api_type, api_type or "none")
        raise BackOfficeError(
            f"There is no client for a {type_label} connector with API type {api_label}.",
            permanent=True,
            hint="Choose an API type the connector type supports (the connector form lists "
            "them).",
            error_class="ConfigurationError",
        )
    cls: type[BackOfficeClient] = import_string(path)
    return cls


def client_for(connector: Connector) -> BackOfficeClient:
    """The client for the connector; raises BackOfficeError (permanent) for an unknown
    combination."""
    return client_class(connector.type, connector.api_type)(connector)
