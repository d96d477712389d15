"""Suite-wide fixtures.

- `test_ca` (session): a TestCA in a temporary directory (tests.fakes.tls) for the HTTPS fakes.
- `ca_bundle`: settings.HTTP_CA_BUNDLE = the test CA's file, with http's TLS caches cleared
  before and after (`clear_http_caches`), so the outbound clients trust the HTTPS fakes.
  Yields the file's path.
- `chromium_browser` (session) and `page`: Playwright on Debian's Chromium.
- autouse: the pooled HTTP clients (http.pooled_httpx_client) are closed after every test.
"""

from __future__ import annotations

import os
import shutil

import pytest

from connectors.backoffices import http
from tests.fakes.tls import TestCA
from tests.support import require

CHROMIUM = "/usr/bin/chromium"


def clear_http_caches() -> None:
    """http's TLS context and CA file are cached per bundle path, its pooled clients per
    connector; start from scratch."""
    http._ssl_context.cache_clear()
    http._ca_bundle_file.cache_clear()
    http.close_pooled_clients()


@pytest.fixture(autouse=True)
def _close_pooled_clients():
    """Every test starts without pooled HTTP clients (connector pks are reused between tests)."""
    yield
    http.close_pooled_clients()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory) -> TestCA:
    return TestCA.create(tmp_path_factory.mktemp("test-ca"))


@pytest.fixture
def ca_bundle(settings, test_ca):
    clear_http_caches()
    settings.HTTP_CA_BUNDLE = test_ca.ca_file
    yield test_ca.ca_file
    clear_http_caches()


@pytest.fixture(scope="session")
def chromium_browser():
    """A headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    require(shutil.which(CHROMIUM) is not None or os.path.exists(CHROMIUM), "Chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the dev extra installs it
        require(False, "Playwright")
    # Playwright's sync API runs an event loop; Django's async-unsafe guard must allow the ORM.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium_browser, live_server):
    context = chromium_browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
