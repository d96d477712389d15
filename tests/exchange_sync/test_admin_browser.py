"""The resource change form in a real browser: the rules "Preview" button (resource_form.js)
shows the unsaved rules' table under the button, and nothing is saved.

Debian's Chromium through Playwright (tests/conftest.py); the admin is served by the live server.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from exchange_sync.models import Resource
from tests.exchange_sync.factories import add_rule, make_appointment, make_resource

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ADMIN_USER, ADMIN_PASSWORD = "operator", "a-long-admin-password-7351"


def log_in(page: Any) -> None:
    get_user_model().objects.create_superuser(ADMIN_USER, "operator@example.test", ADMIN_PASSWORD)
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", ADMIN_USER)
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def verdicts(table: Any) -> dict[str, str]:
    """{appointment no: yes/no} of the rows of a preview table."""
    rows = table.locator("tbody tr")
    result = {}
    for index in range(rows.count()):
        cells = rows.nth(index).locator("td")
        result[cells.nth(0).inner_text().split()[-1]] = cells.nth(3).inner_text().strip()
    return result


def test_the_preview_button_shows_the_unsaved_rules_under_it(page):
    resource = make_resource("R1")
    add_rule(resource, "category", "equals", "Install")
    make_appointment("R1", category="Install", appointment_no="A-INSTALL")
    make_appointment("R1", category="Repair", appointment_no="A-REPAIR", age_minutes=5)
    log_in(page)
    page.goto(f"/admin/exchange_sync/resource/{resource.pk}/change/")

    saved = page.locator("#saved-rules-preview")
    assert verdicts(saved) == {"A-INSTALL": "yes", "A-REPAIR": "no"}

    page.fill("#id_rules-0-value", "repair")
    page.click(".dc-rules-preview-button")
    result = page.locator(".dc-rules-preview-result")
    result.locator("table").wait_for()

    assert "Rules in the form (not saved)" in result.inner_text()
    assert verdicts(result) == {"A-INSTALL": "no", "A-REPAIR": "yes"}
    assert len(page.context.pages) == 1  # shown in place, not in a new tab
    assert Resource.objects.get().rules.get().value == "Install"
