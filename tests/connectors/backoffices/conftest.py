"""Fixtures for the back-office client tests (reuse them; they only touch what they name).

- `test_ca` and `ca_bundle` come from tests/conftest.py (suite-wide); `clear_http_caches` is
  re-exported from there for the tests here that import it.
- `token_server`: the OAuth2 / Entra ID token fake over HTTPS (tests.fakes.token_server),
  started; `.state` is its TokenState (tenants, clients, counters). Calling it needs `ca_bundle`.
- `entra`: `token_server` + `ca_bundle` + settings.ENTRA_AUTHORITY_HOST pointing at it.
- `protected_server(policy, tls=None)`: starts a protected `/echo` fake (tests.fakes.protected)
  behind the AuthPolicy; stopped after the test.
- Every test here starts and ends with an empty token cache (auth.clear_token_cache).
"""

from __future__ import annotations

import pytest

from connectors.backoffices import auth
from tests.conftest import clear_http_caches
from tests.fakes import protected
from tests.fakes import token_server as token_fake

__all__ = ["clear_http_caches"]


@pytest.fixture(autouse=True)
def _empty_token_cache():
    auth.clear_token_cache()
    yield
    auth.clear_token_cache()


@pytest.fixture
def token_server(test_ca):
    with token_fake.make(test_ca) as server:
        yield server


@pytest.fixture
def entra(settings, token_server, ca_bundle):
    settings.ENTRA_AUTHORITY_HOST = token_server.url
    return token_server


@pytest.fixture
def protected_server():
    started = []

    def start(policy, *, tls=None):
        server = protected.make(policy, tls=tls).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
