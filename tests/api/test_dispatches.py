"""`GET /api/v1/dispatches/`: read-only dispatch list for support tooling."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from connectors.models import Dispatch
from connectors.services import api_client_create

from .conftest import EVENTS_URL, assert_error, event, post_json

pytestmark = pytest.mark.django_db

URL = "/api/v1/dispatches/"


def guid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


@pytest.fixture
def dispatches(client, api_key, make_connector):
    """Three BCPROD dispatches (two connectors) and one NAVPROD dispatch."""
    make_connector("BC webhook", password="", signing_secret="whsec_" + "A" * 32)
    make_connector("BC archive")
    make_connector("NAV webhook", source_app="NAVPROD")
    _, nav_key = api_client_create(name="NAV", source_apps=["NAVPROD"])
    post_json(client, EVENTS_URL, event("evt-a", guid=guid(1), job_no="JOB-7"), key=api_key)
    post_json(client, EVENTS_URL, event("evt-b", guid=guid(2), task_no="TASK-9"), key=api_key)
    post_json(client, EVENTS_URL, event("evt-n", guid=guid(3), source_app="NAVPROD"),
              key=nav_key)
    Dispatch.objects.filter(connector__name="BC archive").update(
        status="failed", last_error="HTTP 400", last_hint="Check the payload.",
        last_status_code=400,
    )
    return {"bc": api_key, "nav": nav_key}


def get(client, key, **params):
    return client.get(URL, params, headers={"X-API-KEY": key})


def test_an_item_shows_the_dispatch_without_secrets_or_payload(client, dispatches):
    response = get(client, dispatches["bc"], q="evt-a", connector="BC webhook")

    assert response.status_code == 200, response.content
    [item] = response.json()["results"]
    dispatch = Dispatch.objects.get(connector__name="BC webhook", event__event_id="evt-a")
    assert item == {
        "id": str(dispatch.uid),
        "status": "pending",
        "action": "create",
        "connector": {"id": dispatch.connector_id, "name": "BC webhook"},
        "appointment": {"guid": guid(1), "appointment_no": "A-1", "job_no": "JOB-7",
                        "task_no": "T-1", "source_app": "BCPROD"},
        "event_id": "evt-a",
        "attempts": 0,
        "next_attempt_at": item["next_attempt_at"],
        "last_error": "",
        "last_hint": "",
        "last_status_code": None,
        "created_at": item["created_at"],
        "delivered_at": None,
    }
    assert item["created_at"].endswith("Z")
    assert "whsec_" not in response.content.decode()


def test_an_api_client_sees_only_its_source_apps(client, dispatches):
    bc = {i["event_id"] for i in get(client, dispatches["bc"]).json()["results"]}
    nav = {i["event_id"] for i in get(client, dispatches["nav"]).json()["results"]}
    assert bc == {"evt-a", "evt-b"}
    assert nav == {"evt-n"}
    assert get(client, dispatches["bc"], source_app="NAVPROD").json()["results"] == []


def test_newest_first_and_cursor_paginated(client, dispatches):
    first = get(client, dispatches["bc"], page_size=3).json()
    assert len(first["results"]) == 3 and first["next"]
    rest = client.get(first["next"], headers={"X-API-KEY": dispatches["bc"]}).json()
    ids = [i["id"] for i in first["results"] + rest["results"]]
    expected = Dispatch.objects.filter(connector__source_app="BCPROD").order_by("-id")
    assert ids == [str(d.uid) for d in expected]


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"status": "failed"}, {("BC archive", "evt-a"), ("BC archive", "evt-b")}),
        ({"connector": "BC archive"}, {("BC archive", "evt-a"), ("BC archive", "evt-b")}),
        ({"q": "job-7"}, {("BC webhook", "evt-a"), ("BC archive", "evt-a")}),
        ({"q": "TASK-9"}, {("BC webhook", "evt-b"), ("BC archive", "evt-b")}),
        ({"q": "evt-b"}, {("BC webhook", "evt-b"), ("BC archive", "evt-b")}),
        ({"q": guid(2)}, {("BC webhook", "evt-b"), ("BC archive", "evt-b")}),
        ({"q": "A-1", "status": "pending"}, {("BC webhook", "evt-a"), ("BC webhook", "evt-b")}),
        ({"source_app": "BCPROD", "q": "nothing"}, set()),
    ],
)
def test_filters_and_search(client, dispatches, params, expected):
    items = get(client, dispatches["bc"], **params).json()["results"]
    assert {(i["connector"]["name"], i["event_id"]) for i in items} == expected


def test_a_connector_can_be_given_by_id(client, dispatches):
    connector_id = Dispatch.objects.filter(connector__name="BC archive").first().connector_id
    items = get(client, dispatches["bc"], connector=str(connector_id)).json()["results"]
    assert {i["connector"]["name"] for i in items} == {"BC archive"}


def test_a_bad_filter_is_a_400_naming_it(client, dispatches):
    error = assert_error(get(client, dispatches["bc"], status="lost"), 400, "invalid")
    assert list(error["fields"]) == ["status"]


def test_a_forged_cursor_is_a_404(client, dispatches):
    import base64

    cursor = base64.b64encode(b"p=not-a-number").decode()
    assert_error(get(client, dispatches["bc"], cursor=cursor), 404, "not_found")


def test_the_list_costs_the_same_queries_however_long(
    client, dispatches, django_assert_num_queries
):
    for n in range(4, 14):
        post_json(client, EVENTS_URL, event(f"more-{n}", guid=guid(n)), key=dispatches["bc"])
    assert Dispatch.objects.filter(connector__source_app="BCPROD").count() == 24
    # One query finds the API client, one reads the page with its connectors, appointments
    # and events.
    with django_assert_num_queries(2):
        response = get(client, dispatches["bc"], page_size=30)
    assert len(response.json()["results"]) == 24


def test_a_user_with_view_dispatch_sees_every_source_app(client, dispatches):
    user = User.objects.create_user("support", password="pw-For-tests-1")
    user.user_permissions.add(Permission.objects.get(codename="view_dispatch"))
    client.force_login(user)
    items = client.get(URL).json()["results"]
    assert {i["event_id"] for i in items} == {"evt-a", "evt-b", "evt-n"}


def test_a_user_without_the_permission_is_403(client, dispatches):
    client.force_login(User.objects.create_user("visitor", password="pw-For-tests-1"))
    error = assert_error(client.get(URL), 403, "permission_denied")
    assert "view_dispatch" in error["message"]


def test_nobody_is_401(client, dispatches):
    assert_error(client.get(URL), 401, "not_authenticated")


def test_it_is_read_only(client, dispatches):
    response = client.post(URL, data="{}", content_type="application/json",
                           headers={"X-API-KEY": dispatches["bc"]})
    assert_error(response, 405, "method_not_allowed")
