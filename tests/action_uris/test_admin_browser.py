"""The action URI form in a real browser: "Preview" shows the rendered URI under the button
(action_uri_form.js) without leaving or saving the form."""

from __future__ import annotations

import pytest

from connectors.models import ActionUri
from tests.connectors.test_admin_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_administrator_previews_a_template_before_saving_it(page):
    log_in(page)
    page.goto("/admin/connectors/actionuri/add/")
    page.fill("#id_source_app", "BCPROD")
    page.select_option("#id_url_type", "task")
    page.fill("#id_template", "https://bc.example.com/jobs/#JOBNO#?task=#TASK#")

    page.click("button[name=_preview]")
    errors = page.locator(".dc-preview-result .errorlist li")
    errors.first.wait_for()
    assert errors.all_inner_texts()[0].startswith("Unknown placeholder #TASK#. Known placeholders:")

    page.fill("#id_template", "https://bc.example.com/jobs/#JOBNO#?task=#TASKNO#")
    page.click("button[name=_preview]")
    uri = page.locator(".dc-preview-result code")
    uri.wait_for()
    assert uri.inner_text() == "https://bc.example.com/jobs/J-1001?task=T-10"
    assert page.url.endswith("/admin/connectors/actionuri/add/")
    assert len(page.context.pages) == 1  # no new tab
    assert not ActionUri.objects.exists()

    page.click("input[name=_save]")
    page.wait_for_url("**/admin/connectors/actionuri/")
    assert ActionUri.objects.get().template.endswith("?task=#TASKNO#")
