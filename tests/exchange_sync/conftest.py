"""Fixtures for Exchange sync tests against the fake Microsoft Graph (reuse them).

- `graph_server`: the fake Graph (tests.fakes.graph) started over HTTPS with the suite's
  `test_ca`; settings.ENTRA_AUTHORITY_HOST = server.url, settings.GRAPH_BASE_URL =
  server.url + "/v1.0", `ca_bundle` active, and the connectors' token cache cleared before and
  after. Yields the FakeServer; `.state` is its GraphState (users, events, subscriptions,
  faults, counters: see tests/fakes/graph/__init__.py).
- `graph_state`: `graph_server.state`.
- `graph_client`: an exchange_sync.graph.GraphClient for the fake's tenant, client and secret,
  with small retry waits (max_retry_wait_s=2, backoff_s=0.05); closed after the test.
- `receiver`: starts a plain-http notification receiver (tests.exchange_sync.conftest.Receiver
  handler; see its docstring) and stops it after the test: `receiver()` → FakeServer.
- Constants: TENANT, CLIENT_ID, CLIENT_SECRET (the fake's Entra app).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.backoffices import auth
from exchange_sync.graph import GraphClient
from tests.fakes import graph as graph_fake
from tests.fakes.server import FakeHandler, FakeServer
from tests.fakes.token_server import CLIENT_ID, CLIENT_SECRET, TENANT

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "TENANT", "ReceiverHandler", "ReceiverState"]


@pytest.fixture
def graph_server(settings, test_ca, ca_bundle):
    auth.clear_token_cache()
    with graph_fake.make(test_ca) as server:
        settings.ENTRA_AUTHORITY_HOST = server.url
        settings.GRAPH_BASE_URL = server.url + "/v1.0"
        yield server
    auth.clear_token_cache()


@pytest.fixture
def graph_state(graph_server) -> graph_fake.GraphState:
    return graph_server.state  # type: ignore[no-any-return]


@pytest.fixture
def graph_client(graph_server):
    client = GraphClient(
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        max_retry_wait_s=2.0,
        backoff_s=0.05,
    )
    yield client
    client.close()


@dataclass
class ReceiverState:
    """How the receiver answers: `echo` the validation token (or answer `status`)."""

    echo: bool = True
    status: int = 202


class ReceiverHandler(FakeHandler):
    """A notification endpoint as an app should write it: `?validationToken=` → 200 text/plain
    with the (URL-decoded) token; a JSON notification → `state.status` (202)."""

    def handle_POST(self) -> None:  # noqa: N802
        state: ReceiverState = self.server.state
        token = parse_qs(urlsplit(self.path).query).get("validationToken")
        if token is not None:
            if state.echo:
                self.reply(200, token[0], content_type="text/plain; charset=utf-8")
            else:
                self.reply(404, {"error": "no such endpoint"})
            return
        self.reply(state.status, None)


@pytest.fixture
def receiver():
    started: list[FakeServer] = []

    def start(**options: Any) -> FakeServer:
        server = FakeServer(ReceiverHandler, state=ReceiverState(**options)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
