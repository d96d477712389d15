"""`POST /api/v1/dimescheduler/appointments/`: Dime.Scheduler's own webhook body accepted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.backoffices.base import AppointmentChange
from connectors.backoffices.payloads import dimescheduler_appointment
from connectors.models import Appointment, AppointmentEvent, Dispatch

from .conftest import GUID, appointment, assert_error, post_json

pytestmark = pytest.mark.django_db

URL = "/api/v1/dimescheduler/appointments/"


def ds_body(**overrides):
    """The body our own Dime.Scheduler-style webhook posts (payloads.dimescheduler_appointment)."""
    change = AppointmentChange(
        action="update", dispatch_id="d-1", occurred_at=datetime(2026, 11, 20, 8, tzinfo=UTC),
        appointment=appointment(),
    )
    body = dimescheduler_appointment(change)
    body.update(overrides)
    return body


@pytest.mark.parametrize(
    "url", [URL + "?action=create", URL + "create/", URL + "?action=CREATE"]
)
def test_both_action_forms_accept_the_body_and_map_every_field(
    client, api_key, make_connector, url
):
    make_connector("BC webhook", crud_types=["create"])

    response = post_json(client, url, ds_body(), key=api_key)

    assert response.status_code == 202, response.content
    result = response.json()["results"][0]
    assert (result["status"], result["dispatches"], result["appointment_guid"]) == (
        "accepted", 1, GUID
    )
    stored = AppointmentEvent.objects.get()
    assert (stored.action, stored.source) == ("create", "dimescheduler")
    assert stored.event_id.startswith("ds-")
    # The round trip through Dime.Scheduler's shape gives back the event API's appointment.
    assert Appointment.objects.get().data == appointment()


def test_without_an_action_in_the_url_the_bodys_database_action_decides(client, api_key):
    response = post_json(client, URL, ds_body(DatabaseAction="D"), key=api_key)
    assert response.status_code == 202, response.content
    assert AppointmentEvent.objects.get().action == "delete"


def test_a_missing_or_unknown_action_is_refused(client, api_key):
    body = ds_body()
    body.pop("DatabaseAction")
    error = assert_error(post_json(client, URL, body, key=api_key), 400, "invalid")
    assert "action" in error["fields"]
    error = assert_error(post_json(client, URL + "?action=move", body, key=api_key), 400,
                         "invalid")
    assert "move" in error["fields"]["action"][0]
    assert_error(post_json(client, URL + "move/", body, key=api_key), 404, "not_found")


def test_a_resent_identical_body_is_a_duplicate(client, api_key, make_connector):
    make_connector("BC webhook")
    first = post_json(client, URL + "?action=update", ds_body(), key=api_key)
    again = post_json(client, URL + "?action=update", ds_body(), key=api_key)

    assert first.json()["results"][0]["status"] == "accepted"
    assert again.json()["results"][0]["status"] == "duplicate"
    assert Dispatch.objects.count() == 1


def test_the_same_body_after_another_change_is_a_new_event(client, api_key, make_connector):
    make_connector("BC webhook")
    a, b = ds_body(Subject="A"), ds_body(Subject="B")
    statuses = [
        post_json(client, URL + "?action=update", body, key=api_key).json()["results"][0]["status"]
        for body in (a, b, a)
    ]
    assert statuses == ["accepted", "accepted", "accepted"]
    assert Appointment.objects.get().data["subject"] == "A"
    assert Dispatch.objects.count() == 3


def test_the_webhook_id_header_is_the_event_id(client, api_key, make_connector):
    make_connector("BC webhook")
    headers = {"webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "webhook-timestamp": "1795251600"}
    first = post_json(client, URL + "update/", ds_body(Subject="one"), key=api_key, **headers)
    again = post_json(client, URL + "update/", ds_body(Subject="two"), key=api_key, **headers)

    assert first.json()["results"][0]["status"] == "accepted"
    assert again.json()["results"][0]["status"] == "duplicate"
    stored = AppointmentEvent.objects.get()
    assert stored.event_id == "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    assert stored.occurred_at == datetime.fromtimestamp(1795251600, UTC)


@pytest.mark.parametrize("stamp", ["yesterday", "-5", "99999999999999"])
def test_a_bad_webhook_timestamp_is_refused_naming_the_header(client, api_key, stamp):
    response = post_json(client, URL + "create/", ds_body(), key=api_key,
                         **{"webhook-timestamp": stamp})
    error = assert_error(response, 400, "invalid")
    assert "webhook-timestamp" in error["fields"]


def test_naive_dates_are_read_as_utc_and_nulls_as_empty(client, api_key):
    body = ds_body(StartDate="2026-11-21T09:00:00", EndDate="2026-11-21T10:00:00",
                   Subject=None, Category=None, PlanningQuantity=2, Assignments=None)
    response = post_json(client, URL + "create/", body, key=api_key)
    assert response.status_code == 202, response.content
    data = Appointment.objects.get().data
    assert (data["start"], data["end"]) == ("2026-11-21T09:00:00Z", "2026-11-21T10:00:00Z")
    assert (data["subject"], data["category"], data["planning_qty"]) == ("", "", "2")
    assert data["resources"] == []


def test_field_errors_name_the_pascal_case_fields(client, api_key):
    body = ds_body(AppointmentGuid="nope", Task={"TaskNo": "T", "Job": {"JobNo": "J"}},
                   Assignments=[{"Resource": {"Email": "not-an-email"}}, "x"],
                   EndDate="2020-01-01T00:00:00Z")
    error = assert_error(post_json(client, URL + "create/", body, key=api_key), 400, "invalid")
    assert set(error["fields"]) == {
        "AppointmentGuid", "Task.Job.SourceApp", "Assignments.0.Resource.ResourceNo",
        "Assignments.0.Resource.Email", "Assignments.1",
    }


def test_end_before_start_names_end_date(client, api_key):
    body = ds_body(EndDate="2020-01-01T00:00:00Z")
    error = assert_error(post_json(client, URL + "create/", body, key=api_key), 400, "invalid")
    assert error["fields"] == {"EndDate": ["End must not be before start."]}


def test_a_forbidden_source_app_is_403_naming_it(client, api_key):
    body = ds_body(Task={"TaskNo": "T", "Job": {"SourceApp": "NAVPROD", "JobNo": "J"}})
    error = assert_error(post_json(client, URL + "create/", body, key=api_key), 403,
                         "source_app_not_allowed")
    assert "NAVPROD" in error["message"]
    assert list(error["fields"]) == ["Task.Job.SourceApp"]
    assert not AppointmentEvent.objects.exists()


def test_it_needs_the_same_api_key(client, api_key):
    assert_error(post_json(client, URL + "create/", ds_body()), 401, "not_authenticated")


def test_a_body_that_is_not_an_object_is_refused(client, api_key):
    error = assert_error(post_json(client, URL + "create/", [ds_body()], key=api_key), 400,
                         "invalid")
    assert "JSON object" in error["message"]
