"""Every fake back office at once, on fixed ports, for demos: `make fakes`.

    python -m tests.fakes.all [--base-port 8100] [--connectors demo-connectors.json]

It starts the HTTPS token server (Entra ID and OAuth2), one webhook receiver, Business Central
REST API and SOAP page per authentication scheme, and the fake Microsoft Graph (tests.fakes.graph,
with demo mailboxes), prints the settings DimeConnect needs to trust and reach them
(HTTP_CA_BUNDLE, ENTRA_AUTHORITY_HOST, the service account, GRAPH_BASE_URL and the Exchange
app's tenant, client and secret), and writes an
`apply_connectors` file with one connector for every allowed type x API type x auth type, all
pointing at these fakes. Then:

    python manage.py apply_connectors demo-connectors.json
    # and press "Test connection" in the admin (or: python manage.py test_connector NAME)

The test CA lives in `.fakes/` so restarting keeps the trusted CA file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from connectors.compat import allowed_combinations

from . import bc_rest, token_server, webhook_receiver
from . import graph as graph_fake
from .auth_gate import AuthPolicy
from .server import FakeServer
from .soap_server import soap_server
from .tls import TestCA

ROOT = Path(__file__).resolve().parents[2]
LOGIN, PASSWORD = "CRONUS\\demo", "demo-password-2026"
SERVICE_LOGIN, SERVICE_PASSWORD = "svc-dimeconnect", "service-password-2026"
SIGNING_SECRET = "whsec_ZGVtby1zaWduaW5nLXNlY3JldC0yMDI2IQ=="
WEBHOOK_SCOPE = "api://dimeconnect-demo-hooks/.default"
SOAP_PATH = "/BC/WS/CRONUS/Page/Appointment"

# Which fake policy each auth type meets ("service": the service account as Basic).
SCHEMES = {"none": "service", "basic": "basic", "ntlm": "ntlm", "windows": "negotiate",
           "entra_id": "bearer", "oauth2_basic": "bearer", "oauth2_post": "bearer"}
KINDS = ("webhook", "bc_rest", "soap")


def policy(scheme: str) -> AuthPolicy:
    if scheme == "service":
        return AuthPolicy("basic", SERVICE_LOGIN, SERVICE_PASSWORD)
    if scheme in ("basic", "ntlm", "negotiate"):
        return AuthPolicy(scheme, LOGIN, PASSWORD)
    return AuthPolicy(scheme)  # bearer: any token the token server signed


def kind_of(connector_type: str, api_type: str) -> str:
    return "webhook" if connector_type == "webhook" else (
        "bc_rest" if api_type == "rest" else "soap")


def start_servers(
    base_port: int, ca_dir: Path = ROOT / ".fakes", ca: TestCA | None = None
) -> tuple[FakeServer, dict[tuple[str, str], FakeServer]]:
    """Start the token server on `base_port` and the others on the ports after it (0: any)."""
    ca = ca or TestCA.create(ca_dir)
    tokens = token_server.make(ca, port=base_port).start()
    servers: dict[tuple[str, str], FakeServer] = {}
    needed = sorted({(kind_of(t, a), SCHEMES[u]) for t, a, u in allowed_combinations()})
    for offset, (kind, scheme) in enumerate(needed, start=1):
        port = base_port + offset if base_port else 0
        if kind == "webhook":
            server = webhook_receiver.make(secrets=[SIGNING_SECRET], auth=policy(scheme),
                                           port=port)
            server.state.echo = True
        elif kind == "bc_rest":
            server = bc_rest.make(auth=policy(scheme), port=port)
        else:
            server = soap_server(policy=policy(scheme), port=port)
        servers[(kind, scheme)] = server.start()
    return tokens, servers


def start_graph(port: int, ca: TestCA) -> FakeServer:
    """The fake Microsoft Graph with its demo mailboxes, started (port 0: any)."""
    state = graph_fake.GraphState()
    for email in graph_fake.handler.DEMO_USERS:
        state.add_user(email)
    return graph_fake.make(ca, port=port, state=state).start()


def connector_specs(tokens: FakeServer,
                    servers: dict[tuple[str, str], FakeServer]) -> list[dict[str, Any]]:
    specs = []
    for connector_type, api_type, auth_type in allowed_combinations():
        kind = kind_of(connector_type, api_type)
        server = servers[(kind, SCHEMES[auth_type])]
        uri = {
            "webhook": server.url + "/hooks/appointments",
            "bc_rest": bc_rest.entity_set_url(server),
            "soap": server.url + SOAP_PATH,
        }[kind]
        spec: dict[str, Any] = {
            "name": f"Fake {connector_type} {api_type} {auth_type}",
            "description": "Points at `python -m tests.fakes.all`.",
            "type": connector_type, "api_type": api_type, "auth_type": auth_type,
            "enabled": False, "uri": uri, "source_app": "FAKES",
        }
        if auth_type in ("basic", "ntlm", "windows"):
            spec.update(login=LOGIN, password=PASSWORD)
        elif auth_type != "none":
            spec.update(client_id=token_server.CLIENT_ID, client_secret=token_server.CLIENT_SECRET)
            if auth_type == "entra_id":
                spec["tenant_id"] = token_server.TENANT
            else:
                spec["token_url"] = f"{tokens.url}/oauth2/token"
            if connector_type == "webhook" and auth_type == "entra_id":
                spec["scope"] = WEBHOOK_SCOPE
        if connector_type == "webhook":
            spec["signing_secret"] = SIGNING_SECRET
        specs.append(spec)
    return specs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.all")
    parser.add_argument("--base-port", type=int, default=8100)
    parser.add_argument("--connectors", default="demo-connectors.json",
                        help="Where to write the apply_connectors file.")
    args = parser.parse_args(argv)
    ca = TestCA.create(ROOT / ".fakes")
    tokens, servers = start_servers(args.base_port, ca=ca)
    graph = start_graph(args.base_port + len(servers) + 1 if args.base_port else 0, ca)
    Path(args.connectors).write_text(json.dumps(connector_specs(tokens, servers), indent=2))
    print(f"Token server (Entra ID + OAuth2, https): {tokens.url}")
    for (kind, scheme), server in sorted(servers.items()):
        print(f"  {kind:8} {scheme:9} {server.url}")
    print("\nSet these for DimeConnect (.env), then restart it:")
    print(f"  HTTP_CA_BUNDLE={ROOT / '.fakes' / 'ca.pem'}")
    print(f"  ENTRA_AUTHORITY_HOST={tokens.url}")
    print(f"  BACKOFFICE_SERVICE_LOGIN={SERVICE_LOGIN}")
    print(f"  BACKOFFICE_SERVICE_PASSWORD={SERVICE_PASSWORD}")
    print("\nExchange sync (the fake Graph also serves its own Entra endpoints; DimeConnect's "
          "token server above works too):")
    for line in graph_fake.settings_lines(graph, ca.ca_file)[2:]:
        print(f"  {line}")
    print(f"\nConnectors for every allowed combination: python manage.py apply_connectors "
          f"{args.connectors}\nCtrl-C stops the fakes.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        for server in [tokens, graph, *servers.values()]:
            server.stop()


if __name__ == "__main__":
    main()
