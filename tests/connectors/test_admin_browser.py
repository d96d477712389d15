"""The connector change form in a real browser: its JavaScript shows the fields each choice uses.

Debian's Chromium through Playwright (tests/conftest.py); the admin is served by the live server.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from connectors import services
from connectors.models import Connector

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ADMIN_USER, ADMIN_PASSWORD = "operator", "a-long-admin-password-7351"
CLIENT_SECRET = "oauth-client-secret-from-the-browser-K9x2"

AUTH_ROWS = ("login", "password", "tenant_id", "client_id", "client_secret", "token_url", "scope")


def log_in(page: Any) -> None:
    get_user_model().objects.create_superuser(ADMIN_USER, "operator@example.test", ADMIN_PASSWORD)
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", ADMIN_USER)
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def row(page: Any, field: str) -> Any:
    return page.locator(f".form-row.field-{field}")


def save(page: Any) -> None:
    """Click "Save" and wait for the changelist; a refused form fails with its error messages."""
    page.click("input[name=_save]")
    page.wait_for_load_state()
    errors = page.locator(".errornote, .errorlist li").all_inner_texts()
    assert not errors, errors
    assert page.url.endswith("/admin/connectors/connector/"), page.url


def visible_auth_rows(page: Any) -> set[str]:
    return {field for field in AUTH_ROWS if row(page, field).is_visible()}


def test_an_administrator_adds_an_oauth2_webhook_and_its_secrets_stay_hidden(page):
    log_in(page)
    page.goto("/admin/connectors/connector/add/")
    page.fill("#id_name", "Planner hook")
    page.select_option("#id_type", "webhook")
    page.fill("#id_uri", "http://127.0.0.1:9/hook")
    page.fill("#id_source_app", "BCPROD")
    assert page.locator("#id_api_type").input_value() == "rest"  # a webhook's only API type

    page.select_option("#id_auth_type", "none")
    assert visible_auth_rows(page) == set()
    page.select_option("#id_auth_type", "basic")
    assert visible_auth_rows(page) == {"login", "password"}
    assert row(page, "client_id").is_hidden()
    page.select_option("#id_auth_type", label="OAuth2 client credentials (client secret post)")
    assert visible_auth_rows(page) == {"token_url", "client_id", "client_secret", "scope"}
    assert row(page, "login").is_hidden() and row(page, "password").is_hidden()
    assert row(page, "signing_secret").is_visible()

    page.fill("#id_token_url", "http://127.0.0.1:9/oauth2/token")
    page.fill("#id_client_id", "dimeconnect")
    page.fill("#id_client_secret", CLIENT_SECRET)
    save(page)

    connector = Connector.objects.get(name="Planner hook")
    assert (connector.type, connector.api_type, connector.auth_type) == (
        "webhook", "rest", "oauth2_post"
    )
    assert connector.client_secret == CLIENT_SECRET
    assert connector.signing_secret.startswith("whsec_")

    page.goto(f"/admin/connectors/connector/{connector.pk}/change/")
    content = page.content()
    assert CLIENT_SECRET not in content
    assert connector.signing_secret not in content
    client_secret_status = page.locator('[data-secret-status="client_secret"]')
    assert client_secret_status.inner_text() == f"set · ends in …{CLIENT_SECRET[-4:]}"
    signing_status = page.locator('[data-secret-status="signing_secret"]')
    assert signing_status.inner_text() == f"set · ends in …{connector.signing_secret[-4:]}"


def test_the_signing_secret_row_shows_for_a_webhook_only(page):
    log_in(page)
    page.goto("/admin/connectors/connector/add/")

    page.select_option("#id_type", "webhook")
    assert row(page, "signing_secret").is_visible()
    assert row(page, "payload_style").is_visible()
    page.select_option("#id_type", "nav")
    assert row(page, "signing_secret").is_hidden()
    assert row(page, "payload_style").is_hidden()


def option_disabled(page: Any, select: str, value: str) -> bool:
    return bool(page.locator(f"{select} option[value={value}]").evaluate("o => o.disabled"))


def test_changing_a_webhook_to_nav_offers_only_soap_and_saves(page):
    connector = services.connector_save(
        Connector(
            name="Was a hook", type="webhook", api_type="rest", auth_type="oauth2_post",
            uri="http://127.0.0.1:9/hook", source_app="BCPROD", payload_style="dimescheduler",
            token_url="http://127.0.0.1:9/oauth2/token", client_id="dimeconnect",
            client_secret=CLIENT_SECRET,
        )
    )
    log_in(page)
    page.goto(f"/admin/connectors/connector/{connector.pk}/change/")

    page.select_option("#id_type", "nav")
    assert option_disabled(page, "#id_api_type", "rest")
    assert page.locator("#id_api_type").input_value() == "soap"
    offered = [
        value
        for value in ("none", "basic", "ntlm", "windows", "entra_id", "oauth2_basic", "oauth2_post")
        if not option_disabled(page, "#id_auth_type", value)
    ]
    assert offered == ["none", "basic", "ntlm", "windows"]
    page.select_option("#id_auth_type", "ntlm")
    assert visible_auth_rows(page) == {"login", "password"}
    page.fill("#id_uri", "http://127.0.0.1:9/ws/Page/Appointment")
    page.fill("#id_login", "CRONUS\\svc-dime")
    page.fill("#id_password", "nav-service-password")
    save(page)

    connector.refresh_from_db()
    assert (connector.type, connector.api_type, connector.auth_type) == ("nav", "soap", "ntlm")
    assert connector.password == "nav-service-password"
    assert connector.payload_style == "canonical"
