"""`GET /api/v1/appointments/{guid}/action-uris/`: authenticated like the event API, limited to
the client's source apps (another app's appointment is a 404, like an unknown GUID)."""

from __future__ import annotations

import uuid

import pytest

from connectors.services import api_client_create
from tests.api.conftest import assert_error

from .conftest import GUID

pytestmark = pytest.mark.django_db

URL = f"/api/v1/appointments/{GUID}/action-uris/"


def get(client, url: str = URL, key: str | None = None, **params):
    headers = {"X-API-KEY": key} if key else {}
    return client.get(url, params, headers=headers)


def test_it_answers_the_rendered_action_uris(client, api_key, make_action_uri, make_appointment):
    make_action_uri(template="https://bc.example.com/job/#JOBNO#?a=#DATABASEACTION#",
                    is_default=True)
    make_action_uri(url_type="task", description="Post task", request_type="POST",
                    template="https://bc.example.com/task?task=#TASKNO#&who=#RESOURCE#")
    make_appointment(job_no="J 1/2")

    response = get(client, key=api_key)

    assert response.status_code == 200, response.content
    assert response.json() == [
        {"url_type": "appointment", "description": "Open job",
         "uri": "https://bc.example.com/job/J%201%2F2?a=E", "request_type": "GET",
         "default": True},
        {"url_type": "task", "description": "Post task", "uri": "https://bc.example.com/task",
         "request_type": "POST", "default": False,
         "form_fields": {"task": "T-1", "who": "R1"}},
    ]


def test_the_action_parameter_fills_the_database_action(
    client, api_key, make_action_uri, make_appointment
):
    make_action_uri(template="https://bc.example.com/?a=#DATABASEACTION#")
    make_appointment()

    response = get(client, key=api_key, action="delete")

    assert [item["uri"] for item in response.json()] == ["https://bc.example.com/?a=D"]


def test_an_unknown_action_is_a_400(client, api_key, make_appointment):
    make_appointment()

    error = assert_error(get(client, key=api_key, action="move"), 400, "invalid")

    assert error["fields"] == {"action": ['"move" is not a valid choice.']}


def test_no_templates_answer_an_empty_list(client, api_key, make_appointment):
    make_appointment()

    assert get(client, key=api_key).json() == []


def test_another_source_apps_appointment_is_not_found_like_an_unknown_one(
    client, api_key, make_action_uri, make_appointment
):
    make_action_uri(source_app="NAVPROD")
    make_appointment(source_app="NAVPROD")
    unknown = str(uuid.uuid4())

    hidden = assert_error(get(client, key=api_key), 404, "not_found")
    missing = assert_error(
        get(client, f"/api/v1/appointments/{unknown}/action-uris/", key=api_key), 404,
        "not_found",
    )

    assert hidden["message"] == f"No appointment {GUID} among this API client's source apps."
    assert missing["message"] == hidden["message"].replace(GUID, unknown)


def test_a_client_of_that_source_app_sees_it(client, make_action_uri, make_appointment):
    _, key = api_client_create(name="NAV", source_apps=["NAVPROD", "OTHER"])
    make_action_uri(source_app="NAVPROD")
    make_appointment(source_app="NAVPROD")

    assert get(client, key=key).status_code == 200


def test_a_malformed_guid_is_not_found(client, api_key):
    error = assert_error(get(client, "/api/v1/appointments/not-a-guid/action-uris/",
                             key=api_key), 404, "not_found")

    assert error["message"] == "No appointment not-a-guid among this API client's source apps."


def test_without_a_key_it_is_a_401(client, make_appointment):
    make_appointment()

    response = get(client)

    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_wrong_key_is_a_401(client, make_appointment):
    make_appointment()

    assert_error(get(client, key="dc_" + "x" * 40), 401, "authentication_failed")


def test_a_bearer_token_works_too(client, api_key, make_appointment):
    make_appointment()

    response = client.get(URL, headers={"Authorization": f"Bearer {api_key}"})

    assert response.status_code == 200


def test_post_is_not_allowed(client, api_key, make_appointment):
    make_appointment()

    response = client.post(URL, "{}", content_type="application/json",
                           headers={"X-API-KEY": api_key})

    assert_error(response, 405, "method_not_allowed")


def test_the_schema_describes_the_endpoint(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/appointments/{guid}/action-uris/"]["get"]

    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["guid"]["schema"] == {"type": "string", "format": "uuid"}
    assert parameters["action"]["in"] == "query"
    assert operation["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]
    for code in ("200", "400", "401", "404", "429"):
        assert code in operation["responses"]
    item = operation["responses"]["200"]["content"]["application/json"]["schema"]["items"]
    fields = schema["components"]["schemas"][item["$ref"].rsplit("/", 1)[1]]
    assert set(fields["properties"]) == {
        "url_type", "description", "uri", "request_type", "default", "form_fields",
    }
    assert "form_fields" not in fields["required"]
