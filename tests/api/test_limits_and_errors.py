"""Body size, content type, rate, and the one error shape for every error under /api/."""

from __future__ import annotations

import io
import json

import pytest
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError, connection
from django.test import RequestFactory

from connectors.api import errors
from connectors.api.exceptions import PayloadTooLarge
from connectors.api.parsers import LimitedJSONParser
from connectors.models import AppointmentEvent

from .conftest import EVENTS_URL, assert_error, event, post_json

pytestmark = pytest.mark.django_db


def test_a_body_over_the_limit_is_answered_413_before_it_is_read(client, api_key, settings):
    settings.API_MAX_BODY_BYTES = 2000
    body = event(body="x" * 3000)

    error = assert_error(post_json(client, EVENTS_URL, body, key=api_key), 413, "too_large")

    assert "2000 bytes" in error["message"]
    assert not AppointmentEvent.objects.exists()


def test_a_body_just_under_the_limit_is_accepted(client, api_key, settings):
    body = event(body="x" * 1000)
    settings.API_MAX_BODY_BYTES = len(json.dumps(body))
    assert post_json(client, EVENTS_URL, body, key=api_key).status_code == 202


def test_reading_stops_at_the_limit_even_without_a_declared_length(settings):
    settings.API_MAX_BODY_BYTES = 100
    stream = io.BytesIO(json.dumps({"body": "x" * 500}).encode())
    with pytest.raises(PayloadTooLarge):
        LimitedJSONParser().parse(stream, "application/json", {})
    assert stream.tell() == 101  # one byte past the limit, never the whole body


def test_djangos_own_body_limit_answers_413_in_the_same_shape(settings):
    request = RequestFactory().post(EVENTS_URL)
    response = errors.handler400(request, RequestDataTooBig("too big"))
    assert response.status_code == 413
    assert json.loads(response.content)["error"]["code"] == "too_large"


def test_djangos_body_limit_is_never_below_the_apis(settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE >= settings.API_MAX_BODY_BYTES


@pytest.mark.parametrize(
    "content_type, data",
    [
        ("text/plain", json.dumps(event())),
        ("application/x-www-form-urlencoded", "event_id=1"),
        ("application/xml", "<event/>"),
        ("text/plain", ""),
    ],
)
def test_a_body_that_is_not_json_is_answered_415(client, api_key, content_type, data):
    response = client.post(EVENTS_URL, data=data, content_type=content_type,
                           headers={"Authorization": f"Bearer {api_key}"})
    error = assert_error(response, 415, "unsupported_media_type")
    # Django's test client sends no Content-Type at all with an empty body.
    assert (content_type if data else "none") in error["message"]


def test_malformed_json_is_answered_400(client, api_key):
    response = client.post(EVENTS_URL, data='{"event_id": ', content_type="application/json",
                           headers={"X-API-KEY": api_key})
    assert_error(response, 400, "parse_error")


def test_json_with_nan_is_refused(client, api_key):
    body = json.dumps(event()).replace('"2.5"', "NaN")
    response = client.post(EVENTS_URL, data=body, content_type="application/json",
                           headers={"X-API-KEY": api_key})
    assert_error(response, 400, "parse_error")


def test_over_the_rate_is_answered_429_with_retry_after(client, api_key, settings):
    settings.API_RATE = "2/min"
    for n in range(2):
        assert post_json(client, EVENTS_URL, event(f"e{n}"), key=api_key).status_code == 202

    response = post_json(client, EVENTS_URL, event("e2"), key=api_key)

    error = assert_error(response, 429, "throttled")
    assert 0 < int(response["Retry-After"]) <= 60
    assert "available in" in error["message"]
    assert AppointmentEvent.objects.count() == 2


def test_the_rate_is_counted_per_client(client, api_key, settings):
    from connectors.services import api_client_create

    settings.API_RATE = "1/min"
    _, other_key = api_client_create(name="Other", source_apps=["BCPROD"])
    assert post_json(client, EVENTS_URL, event("a"), key=api_key).status_code == 202
    assert post_json(client, EVENTS_URL, event("b"), key=other_key).status_code == 202
    assert post_json(client, EVENTS_URL, event("c"), key=api_key).status_code == 429


def test_an_empty_rate_turns_the_limit_off(client, api_key, settings):
    settings.API_RATE = ""
    for n in range(5):
        assert post_json(client, EVENTS_URL, event(f"e{n}"), key=api_key).status_code == 202


def test_a_database_that_is_down_is_answered_503_without_a_traceback(client, api_key):
    def unreachable(execute, sql, params, many, context):
        raise OperationalError("could not connect to server: Connection refused")

    with connection.execute_wrapper(unreachable):
        response = post_json(client, EVENTS_URL, event(), key=api_key)

    error = assert_error(response, 503, "unavailable")
    assert response["Retry-After"] == "5"
    assert "Connection refused" not in error["message"]
    assert "Traceback" not in response.content.decode()


def test_a_wrong_method_is_answered_405(client, api_key):
    response = client.get(EVENTS_URL, headers={"X-API-KEY": api_key})
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


def test_an_accept_header_without_json_is_answered_406_in_json(client, api_key):
    response = client.get("/api/v1/dispatches/", headers={"X-API-KEY": api_key,
                                                          "Accept": "text/html"})
    assert_error(response, 406, "not_acceptable")


def test_an_unknown_api_path_is_answered_404_json(client):
    error = assert_error(client.get("/api/v1/nothing-here/"), 404, "not_found")
    assert "/api/v1/nothing-here/" in error["message"]


def test_a_missing_trailing_slash_is_answered_404_naming_the_right_path(client, api_key):
    response = post_json(client, EVENTS_URL.rstrip("/"), event(), key=api_key)
    error = assert_error(response, 404, "not_found")
    assert f"did you mean {EVENTS_URL}" in error["message"]


def test_the_api_404_is_json_in_debug_mode_too(client, settings):
    settings.DEBUG = True
    assert_error(client.get("/api/v2/"), 404, "not_found")


@pytest.mark.parametrize(
    "handler, status, code",
    [
        (errors.handler400, 400, "bad_request"),
        (errors.handler403, 403, "permission_denied"),
        (errors.handler404, 404, "not_found"),
        (errors.handler500, 500, "server_error"),
    ],
)
def test_djangos_error_handlers_answer_json_under_api_only(handler, status, code):
    factory = RequestFactory()
    args = () if handler is errors.handler500 else (Exception("boom"),)

    api = handler(factory.get("/api/v1/x/"), *args)
    assert api.status_code == status
    assert json.loads(api.content) == {
        "error": {"status": status, "code": code, "message": json.loads(api.content)["error"][
            "message"]}
    }
    assert "boom" not in api.content.decode()

    page = handler(factory.get("/admin/x/"), *args)
    assert page.status_code == status
    assert not page["Content-Type"].startswith("application/json")


def test_an_unexpected_error_is_logged_and_answered_500_json(caplog):
    response = errors.exception_handler(RuntimeError("secret detail"), {"view": None})
    assert response.status_code == 500
    assert response.data["error"]["code"] == "server_error"
    assert "secret detail" not in json.dumps(response.data)
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)
