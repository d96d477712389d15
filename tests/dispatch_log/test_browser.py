"""A support user in a real browser: logs in, filters failed dispatches, searches a job number,
opens one, presses "Retry now", sees the new "requested" entry, and copies the cURL.

Debian's Chromium through Playwright (tests/conftest.py); the pages are served by the live
server. Set DISPATCH_LOG_SCREENSHOTS=<dir> to keep screenshots of the list and the detail.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from tests.connectors.pipeline_factories import AttemptFactory, DispatchFactory

from .conftest import SECRETS, SUPPORT_PASSWORD, ensure_support_group

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

JOB = "J-7001"


@pytest.fixture
def support_page(chromium_browser: Any, live_server: Any) -> Any:
    """A page in a context that may use the clipboard (the `page` fixture's may not)."""
    context = chromium_browser.new_context(base_url=live_server.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("DISPATCH_LOG_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def rows(page: Any) -> Any:
    return page.locator("#result_list tbody tr")


def test_a_support_user_finds_a_failed_dispatch_retries_it_and_copies_the_curl(
    support_page, secret_connector
):
    user = get_user_model().objects.create_user("sam.support", password=SUPPORT_PASSWORD,
                                                is_staff=True)
    user.groups.add(ensure_support_group())
    wanted = DispatchFactory(
        connector=secret_connector, status="failed", event__appointment__job_no=JOB,
        last_error="Business Central answered 400: Job J-7001 has no task T-1.",
        last_hint="Create the task in Business Central, then retry.",
    )
    AttemptFactory(dispatch=wanted, outcome="failed", status_code=400, request={
        "method": "POST", "url": "https://bc.example.test/api/appointments",
        "headers": {"Authorization": "[redacted]", "Content-Type": "application/json"},
        "body": '{"jobNo": "J-7001", "taskNo": "T-1"}',
    })
    DispatchFactory(connector=secret_connector, status="failed")
    DispatchFactory(connector=secret_connector, status="succeeded",
                    event__appointment__job_no=JOB)
    page = support_page

    page.goto("/dispatches/")  # → the admin login, and back
    page.fill("#id_username", "sam.support")
    page.fill("#id_password", SUPPORT_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/dispatches/")

    page.select_option("#id_status", "failed")
    page.click("#apply-filters")
    page.wait_for_url("**/dispatches/?*status=failed*")
    assert rows(page).count() == 2
    assert set(page.locator("#result_list tbody .dc-status").all_inner_texts()) == {"Failed"}
    screenshot(page, "list")

    page.fill("#searchbar", JOB)
    page.press("#searchbar", "Enter")
    page.wait_for_url(f"**q={JOB}*")
    assert rows(page).count() == 1  # the succeeded one of the same job is filtered out
    assert "Job J-7001 has no task T-1." in rows(page).first.inner_text()

    rows(page).first.locator("th a").click()
    page.wait_for_url(f"**/dispatches/{wanted.pk}/")
    assert page.locator("#dispatch-status").inner_text() == "Failed"
    assert "Create the task in Business Central" in page.locator("#summary").inner_text()

    page.click("#retry-now")
    page.wait_for_load_state()
    assert "Retry requested" in page.locator(".messagelist").inner_text()
    assert page.locator("#dispatch-status").inner_text() == "Pending"
    requested = page.locator('#attempts tr[data-outcome="requested"]')
    assert requested.count() == 1
    assert requested.locator(".dc-attempt-user").inner_text() == "sam.support"
    screenshot(page, "detail")

    page.click("#copy-curl")
    page.wait_for_function("document.getElementById('copy-curl').textContent === 'Copied'")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("curl -X POST https://bc.example.test/api/appointments \\\n")
    assert "Authorization: [redacted]" in copied and "J-7001" in copied
    assert copied == page.locator("#curl-command").inner_text()
    for secret in SECRETS:
        assert secret not in copied
        assert secret not in page.content()
