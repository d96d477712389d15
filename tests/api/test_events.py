"""`POST /api/v1/appointments/events/`: accepting events, auth, duplicates, validation."""

from __future__ import annotations

import pytest

from connectors.models import ApiClient, Appointment, AppointmentEvent, Dispatch
from connectors.services import api_client_create

from .conftest import EVENTS_URL, GUID, assert_error, event, post_json

pytestmark = pytest.mark.django_db

OTHER_GUID = "0b2f9c1e-7d44-4c3a-9a51-2e8f6d7c5b10"


def test_it_accepts_an_event_and_dispatches_to_each_matching_connector(
    client, api_key, make_connector
):
    make_connector("BC webhook")
    make_connector("Service only", source_type="SERVICE")
    make_connector("Other type", source_type="PROJECT")
    make_connector("Other app", source_app="NAVPROD")
    make_connector("Disabled", enabled=False)
    make_connector("No creates", crud_types=["update", "delete"])

    response = post_json(client, EVENTS_URL, event(), key=api_key)

    assert response.status_code == 202, response.content
    assert response.json() == {
        "results": [{"event_id": "evt-1", "status": "accepted", "dispatches": 2,
                     "stale": False, "appointment_guid": GUID}],
        "accepted": 1,
        "duplicates": 0,
    }
    names = set(Dispatch.objects.values_list("connector__name", flat=True))
    assert names == {"BC webhook", "Service only"}


def test_the_stored_appointment_is_normalised_json(client, api_key):
    body = event(
        start="2026-11-21T10:00:00+01:00", end="2026-11-21T12:30:00.5+01:00",
        planning_qty=2.50, guid=GUID.upper(), subject="  padded  ", unknown_key="dropped",
        resources=[{"resource_no": "R1"}], time_marker=None,
    )
    response = post_json(client, EVENTS_URL, body, key=api_key)

    assert response.status_code == 202, response.content
    data = Appointment.objects.get().data
    assert set(data) == {
        "guid", "appointment_id", "appointment_no", "source_app", "source_type", "job_no",
        "task_no", "resources", "subject", "body", "start", "end", "is_all_day", "category",
        "time_marker", "importance", "locked", "planning_uom", "planning_qty", "backoffice_id",
        "field_values",
    }
    assert data["guid"] == GUID
    assert data["start"] == "2026-11-21T09:00:00Z"
    assert data["end"] == "2026-11-21T11:30:00.500000Z"
    assert data["planning_qty"] == "2.5"
    assert data["subject"] == "  padded  "
    assert data["resources"] == [{"resource_no": "R1", "email": ""}]
    assert data["time_marker"] == ""
    assert "unknown_key" not in data
    assert AppointmentEvent.objects.get().payload == data


def test_a_minimal_delete_event_needs_only_guid_and_source_app(client, api_key):
    body = {"event_id": "d1", "action": "delete", "occurred_at": "2026-11-20T08:00:00Z",
            "appointment": {"guid": GUID, "source_app": "BCPROD"}}
    response = post_json(client, EVENTS_URL, body, key=api_key)
    assert response.status_code == 202, response.content
    stored = Appointment.objects.get()
    assert stored.deleted is True
    assert stored.data["start"] is None and stored.data["planning_qty"] is None


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_both_key_headers_authenticate(client, api_key, header):
    headers = (
        {"Authorization": f"Bearer {api_key}"} if header == "bearer" else {"X-API-KEY": api_key}
    )
    response = post_json(client, EVENTS_URL, event(), **headers)
    assert response.status_code == 202, response.content
    assert ApiClient.objects.get().last_used_at is not None


@pytest.mark.parametrize(
    "headers, code",
    [
        ({}, "not_authenticated"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "not_authenticated"),
        ({"Authorization": "Bearer dc_wrong-key-0123456789abcdef"}, "authentication_failed"),
        ({"X-API-KEY": "not a key at all"}, "authentication_failed"),
        ({"Authorization": "Bearer "}, "authentication_failed"),
    ],
)
def test_a_missing_or_wrong_key_is_answered_401(client, api_key, headers, code):
    response = post_json(client, EVENTS_URL, event(), **headers)
    error = assert_error(response, 401, code)
    assert response["WWW-Authenticate"].startswith("Bearer")
    if code == "not_authenticated":
        assert "X-API-KEY" in error["message"]
    assert not AppointmentEvent.objects.exists()


def test_an_inactive_clients_key_is_answered_401(client, api_key):
    ApiClient.objects.update(is_active=False)
    response = post_json(client, EVENTS_URL, event(), key=api_key)
    error = assert_error(response, 401, "authentication_failed")
    assert "inactive" in error["message"]


def test_a_forbidden_source_app_is_answered_403_naming_it_and_nothing_is_stored(
    client, api_key, make_connector
):
    make_connector("NAV", source_app="NAVPROD")
    body = [event("ok-1"), event("bad-1", source_app="NAVPROD", guid=OTHER_GUID)]

    response = post_json(client, EVENTS_URL, body, key=api_key)

    error = assert_error(response, 403, "source_app_not_allowed")
    assert "NAVPROD" in error["message"] and "BCPROD" in error["message"]
    assert error["fields"] == {
        "1.appointment.source_app": ["This API client may not post for source app 'NAVPROD'."]
    }
    assert not AppointmentEvent.objects.exists()
    assert not Appointment.objects.exists()


def test_a_client_cannot_take_over_an_appointment_of_another_source_app(client, api_key):
    _, nav_key = api_client_create(name="NAV", source_apps=["NAVPROD"])
    assert post_json(client, EVENTS_URL, event(), key=api_key).status_code == 202

    response = post_json(
        client, EVENTS_URL, event("nav-1", action="delete", source_app="NAVPROD"), key=nav_key
    )

    error = assert_error(response, 403, "source_app_not_allowed")
    assert "BCPROD" in error["fields"]["appointment.source_app"][0]
    assert Appointment.objects.get().source_app == "BCPROD"


def test_the_same_event_id_from_the_same_client_is_a_duplicate(client, api_key, make_connector):
    make_connector("BC webhook")
    assert post_json(client, EVENTS_URL, event(), key=api_key).status_code == 202

    response = post_json(client, EVENTS_URL, event(subject="changed"), key=api_key)

    assert response.status_code == 202
    body = response.json()
    assert body["results"][0] | {"status": "duplicate", "dispatches": 0} == body["results"][0]
    assert (body["accepted"], body["duplicates"]) == (0, 1)
    assert Dispatch.objects.count() == 1
    assert Appointment.objects.get().data["subject"] == "Boiler service"


def test_the_same_event_id_from_another_client_is_accepted(client, api_key, make_connector):
    make_connector("BC webhook")
    _, other_key = api_client_create(name="Second BC", source_apps=["BCPROD"])
    post_json(client, EVENTS_URL, event(), key=api_key)

    response = post_json(client, EVENTS_URL, event(occurred_at="2026-11-20T09:00:00Z"),
                         key=other_key)

    assert response.json()["results"][0]["status"] == "accepted"
    assert Dispatch.objects.count() == 2


def test_an_array_mixing_new_and_duplicate_events(client, api_key, make_connector):
    make_connector("BC webhook")
    post_json(client, EVENTS_URL, event("e1"), key=api_key)
    body = [
        event("e1"),
        event("e2", action="update", occurred_at="2026-11-20T09:00:00Z"),
        event("e2", action="update", occurred_at="2026-11-20T09:00:00Z"),
        event("e3", guid=OTHER_GUID),
    ]

    response = post_json(client, EVENTS_URL, body, key=api_key)

    assert response.status_code == 202, response.content
    result = response.json()
    assert [(r["event_id"], r["status"], r["dispatches"]) for r in result["results"]] == [
        ("e1", "duplicate", 0), ("e2", "accepted", 1), ("e2", "duplicate", 0),
        ("e3", "accepted", 1),
    ]
    assert (result["accepted"], result["duplicates"]) == (2, 2)


def test_500_events_are_accepted_and_501_refused_naming_the_limit(client, api_key):
    body = [event(f"e{i}", guid=f"00000000-0000-4000-8000-{i:012d}") for i in range(501)]

    error = assert_error(post_json(client, EVENTS_URL, body, key=api_key), 400, "invalid")
    assert "500" in error["message"] and "501" in error["message"]
    assert not AppointmentEvent.objects.exists()

    response = post_json(client, EVENTS_URL, body[:500], key=api_key)
    assert response.status_code == 202
    assert response.json()["accepted"] == 500


def test_an_empty_array_is_refused(client, api_key):
    error = assert_error(post_json(client, EVENTS_URL, [], key=api_key), 400, "invalid")
    assert "at least one" in error["message"]


@pytest.mark.parametrize("body", ["just a string", 42, None])
def test_a_body_that_is_neither_object_nor_array_is_refused(client, api_key, body):
    error = assert_error(post_json(client, EVENTS_URL, body, key=api_key), 400, "invalid")
    assert "event object" in error["message"] or "event_id" in str(error.get("fields"))


def test_field_errors_name_the_item_and_the_field(client, api_key):
    body = [
        event("ok"),
        event("", action="move", guid="not-a-uuid", resources=[{"email": "x"}]),
        "not an object",
    ]
    error = assert_error(post_json(client, EVENTS_URL, body, key=api_key), 400, "invalid")
    fields = error["fields"]
    assert set(fields) == {
        "1.event_id", "1.action", "1.appointment.guid", "1.appointment.resources.0.resource_no",
        "1.appointment.resources.0.email", "2",
    }
    assert fields["1.appointment.guid"] == ["Must be a valid UUID."]
    assert error["message"].startswith("Invalid input: 1.")
    assert not AppointmentEvent.objects.exists()


def test_a_single_objects_field_errors_have_no_index(client, api_key):
    body = event(source_app="X" * 31, appointment_no="N" * 51, importance="high")
    error = assert_error(post_json(client, EVENTS_URL, body, key=api_key), 400, "invalid")
    assert set(error["fields"]) == {
        "appointment.source_app", "appointment.appointment_no", "appointment.importance",
    }


def test_a_naive_datetime_is_refused_with_a_message(client, api_key):
    body = event(occurred_at="2026-11-20T08:00:00", start="2026-11-21T09:00:00")
    error = assert_error(post_json(client, EVENTS_URL, body, key=api_key), 400, "invalid")
    assert "time zone" in error["fields"]["occurred_at"][0]
    assert "time zone" in error["fields"]["appointment.start"][0]


def test_an_end_before_the_start_is_refused(client, api_key):
    body = event(start="2026-11-21T11:00:00Z", end="2026-11-21T09:00:00Z")
    error = assert_error(post_json(client, EVENTS_URL, body, key=api_key), 400, "invalid")
    assert error["fields"] == {"appointment.end": ["End must not be before start."]}


def test_create_and_update_need_start_and_end(client, api_key):
    body = event(action="update", start=None)
    body["appointment"].pop("end")
    error = assert_error(post_json(client, EVENTS_URL, body, key=api_key), 400, "invalid")
    assert error["fields"] == {
        "appointment.start": ["Required for update."],
        "appointment.end": ["Required for update."],
    }


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"planning_qty": "lots"}, "appointment.planning_qty"),
        ({"planning_qty": "1.1234567"}, "appointment.planning_qty"),
        ({"planning_qty": True}, "appointment.planning_qty"),
        ({"field_values": ["not", "an", "object"]}, "appointment.field_values"),
        ({"field_values": {"k": "nul\u0000char"}}, "appointment.field_values"),
        ({"appointment_id": 2**63}, "appointment.appointment_id"),
        ({"guid": 12345}, "appointment.guid"),
        ({"start": "0001-01-01T00:00:00+01:00"}, "appointment.start"),
        ({"subject": "bad\u0000"}, "appointment.subject"),
        ({"resources": "R1"}, "appointment.resources"),
    ],
)
def test_values_that_cannot_be_stored_or_sent_are_refused(client, api_key, overrides, field):
    error = assert_error(
        post_json(client, EVENTS_URL, event(**overrides), key=api_key), 400, "invalid"
    )
    assert field in error["fields"]


def test_a_stale_event_is_recorded_but_changes_and_sends_nothing(
    client, api_key, make_connector
):
    make_connector("BC webhook")
    newer = event("new", action="update", occurred_at="2026-11-20T10:00:00Z", subject="newer")
    post_json(client, EVENTS_URL, newer, key=api_key)

    older = event("old", action="update", occurred_at="2026-11-20T09:00:00Z", subject="older")
    response = post_json(client, EVENTS_URL, older, key=api_key)

    assert response.status_code == 202
    assert response.json()["results"][0] == {
        "event_id": "old", "status": "accepted", "dispatches": 0, "stale": True,
        "appointment_guid": GUID,
    }
    assert AppointmentEvent.objects.get(event_id="old").stale is True
    assert Appointment.objects.get().data["subject"] == "newer"
    assert Dispatch.objects.count() == 1


def test_accepted_dispatches_are_queued_after_commit(
    client, api_key, make_connector, django_capture_on_commit_callbacks
):
    make_connector("BC webhook")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_json(client, EVENTS_URL, event(), key=api_key)
    assert response.status_code == 202
    assert len(callbacks) == 1  # the intake service rings the connector of the new dispatch
