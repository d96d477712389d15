"""Fixtures for the back-office client tests (reuse them; they only touch what they name).

- `test_ca` (session): a TestCA in a temporary directory (tests.fakes.tls).
- `ca_bundle`: settings.HTTP_CA_BUNDLE = the test CA's file, with http's TLS caches cleared
  before and after, so the outbound clients trust the HTTPS fakes. Yields the file's path.
- `token_server`: the OAuth2 / Entra ID token fake over HTTPS (tests.fakes.token_server),
  started; `.state` is its TokenState (tenants, clients, counters). Calling it needs `ca_bundle`.
- `entra`: `token_server` + `ca_bundle` + settings.ENTRA_AUTHORITY_HOST pointing at it.
- `protected_server(policy, tls=None)`: starts a protected `/echo` fake (tests.fakes.protected)
  behind the AuthPolicy; stopped after the test.
- Every test here starts and ends with an empty token cache (auth.clear_token_cache).
"""

from __future__ import annotations

import pytest

from connectors.backoffices import auth, http
from tests.fakes import protected
from tests.fakes import token_server as token_fake
from tests.fakes.tls import TestCA


def clear_http_caches() -> None:
    """http's TLS context and CA file are cached per bundle path; start from scratch."""
    http._ssl_context.cache_clear()
    http._ca_bundle_file.cache_clear()


@pytest.fixture(autouse=True)
def _empty_token_cache():
    auth.clear_token_cache()
    yield
    auth.clear_token_cache()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory) -> TestCA:
    return TestCA.create(tmp_path_factory.mktemp("test-ca"))


@pytest.fixture
def ca_bundle(settings, test_ca):
    clear_http_caches()
    settings.HTTP_CA_BUNDLE = test_ca.ca_file
    yield test_ca.ca_file
    clear_http_caches()


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
