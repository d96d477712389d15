"""Who may open the dispatch log: anonymous → login page, no permission → 403 naming it,
the Support group → view and retry, but never edit connectors."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from connectors.models import Attempt, Connector
from tests.connectors.pipeline_factories import ConnectorFactory, DispatchFactory

pytestmark = pytest.mark.django_db

PAGES = ("/dispatches/", "/dispatches/{pk}/", "/dispatches/export.csv")


@pytest.fixture
def dispatch():
    return DispatchFactory(status="failed")


@pytest.mark.parametrize("page", PAGES)
def test_an_anonymous_visitor_is_sent_to_the_admin_login_and_back(client, dispatch, page):
    url = page.format(pk=dispatch.pk)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


def test_an_anonymous_retry_changes_nothing(client, dispatch):
    response = client.post(f"/dispatches/{dispatch.pk}/retry/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    dispatch.refresh_from_db()
    assert dispatch.status == "failed" and not Attempt.objects.exists()


@pytest.mark.parametrize("page", PAGES)
def test_a_user_without_the_permission_gets_a_403_that_names_it(client, dispatch, page):
    client.force_login(get_user_model().objects.create_user("nina", is_staff=True))
    response = client.get(page.format(pk=dispatch.pk))
    assert response.status_code == 403
    text = response.content.decode()
    assert "connectors.view_dispatch" in text and "Support" in text
    assert 'id="user-tools"' in text  # the admin's frame, not a bare error


def test_a_viewer_without_retry_permission_sees_no_button_and_cannot_retry(
    viewer_client, dispatch
):
    page = viewer_client.get(f"/dispatches/{dispatch.pk}/")
    assert page.status_code == 200 and b'id="retry-now"' not in page.content

    response = viewer_client.post(f"/dispatches/{dispatch.pk}/retry/")

    assert response.status_code == 403
    assert "connectors.retry_dispatch" in response.content.decode()
    dispatch.refresh_from_db()
    assert dispatch.status == "failed" and not Attempt.objects.exists()


def test_a_support_user_can_view_the_list_and_a_dispatch_and_retry(support_client, dispatch):
    assert support_client.get("/dispatches/").status_code == 200
    page = support_client.get(f"/dispatches/{dispatch.pk}/")
    assert page.status_code == 200 and b'id="retry-now"' in page.content

    response = support_client.post(f"/dispatches/{dispatch.pk}/retry/")

    assert response.status_code == 302
    dispatch.refresh_from_db()
    assert dispatch.status == "pending"


def test_retry_is_post_only(support_client, dispatch):
    assert support_client.get(f"/dispatches/{dispatch.pk}/retry/").status_code == 405


def test_an_unknown_dispatch_is_a_404(support_client):
    assert support_client.get("/dispatches/999999/").status_code == 404
    assert support_client.post("/dispatches/999999/retry/").status_code == 404


def test_a_support_user_cannot_add_change_or_delete_connectors(support_client):
    connector = ConnectorFactory(name="Keep me")
    change_url = f"/admin/connectors/connector/{connector.pk}/change/"

    # view_connector (the group has it) shows the page read-only: no form to save.
    page = support_client.get(change_url)
    assert page.status_code == 200 and b'name="_save"' not in page.content

    posted = support_client.post(change_url, {"name": "Renamed", "enabled": ""})
    assert posted.status_code == 403
    assert support_client.get("/admin/connectors/connector/add/").status_code == 403
    assert support_client.post(
        f"/admin/connectors/connector/{connector.pk}/delete/", {"post": "yes"}
    ).status_code == 403
    connector.refresh_from_db()
    assert connector.name == "Keep me" and connector.enabled
    assert Connector.objects.count() == 1


def test_a_support_user_cannot_run_the_connector_admin_actions(support_client):
    connector = ConnectorFactory(name="Stay on")
    response = support_client.post(
        "/admin/connectors/connector/",
        {"action": "disable_connectors", "_selected_action": [connector.pk]},
    )
    assert response.status_code == 200  # the changelist again: the action is not offered
    connector.refresh_from_db()
    assert connector.enabled
