"""Demo data for a first `make run`: one connector of each type and an API client.

The connectors point at the loopback fakes (`python -m tests.fakes.NAME --port N`) and start
disabled, so nothing is sent anywhere until an administrator points one at a real system.
"""

from __future__ import annotations

import secrets
from typing import Any

from connectors import services

DEMO_SOURCE_APP = "DEMO"
API_CLIENT_NAME = "Demo back office"

CONNECTORS: list[dict[str, Any]] = [
    {
        "name": "Demo Business Central online (REST, Entra ID)",
        "type": "bc_online",
        "api_type": "rest",
        "auth_type": "entra_id",
        "uri": "http://127.0.0.1:8102/api/dimeSoftware/dimeScheduler/v1.0/companies(demo)/"
        "appointments",
        "tenant_id": "00000000-0000-0000-0000-00000000d3e0",
        "client_id": "11111111-2222-3333-4444-555555555555",
    },
    {
        "name": "Demo Business Central on-prem (SOAP, NTLM)",
        "type": "bc_onprem",
        "api_type": "soap",
        "auth_type": "ntlm",
        "uri": "http://127.0.0.1:8103/BC/WS/DEMO/Page/Appointment",
        "login": "DEMO\\svc-dimeconnect",
    },
    {
        "name": "Demo NAV (SOAP, basic)",
        "type": "nav",
        "api_type": "soap",
        "auth_type": "basic",
        "uri": "http://127.0.0.1:8103/NAV/WS/DEMO/Page/Appointment",
        "login": "svc-dimeconnect",
    },
    {
        "name": "Demo webhook (OAuth2 client secret post)",
        "type": "webhook",
        "api_type": "rest",
        "auth_type": "oauth2_post",
        "uri": "http://127.0.0.1:8101/hooks/appointments",
        "token_url": "https://127.0.0.1:8104/oauth2/token",
        "client_id": "dimeconnect-demo",
        "scope": "appointments.write",
    },
]


def load() -> str:
    """Create the demo connectors and API client; returns the API client's key."""
    specs = []
    for values in CONNECTORS:
        spec = {
            **values,
            "description": "Demo connector: point it at your back office, then enable it.",
            "enabled": False,
            "source_app": DEMO_SOURCE_APP,
        }
        if spec["auth_type"] in ("basic", "ntlm"):
            spec["password"] = secrets.token_urlsafe(16)
        if spec["auth_type"] in ("entra_id", "oauth2_post"):
            spec["client_secret"] = secrets.token_urlsafe(24)
        specs.append(services.ConnectorSpec(label=values["name"], values=spec))
    services.connectors_upsert(specs)
    _, key = services.api_client_create(name=API_CLIENT_NAME, source_apps=[DEMO_SOURCE_APP])
    return key

