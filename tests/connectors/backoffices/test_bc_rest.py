"""The Business Central REST client against the loopback Business Central API page."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from connectors import services
from connectors.backoffices.auth import BC_SCOPE
from connectors.backoffices.base import BackOfficeError
from connectors.backoffices.bc_rest import BcRestClient, metadata_url, with_top
from connectors.backoffices.redact import MASK
from connectors.models import Connector
from tests.fakes import bc_rest
from tests.fakes.auth_gate import AuthPolicy

from . import samples

pytestmark = pytest.mark.django_db

LOGIN = "DIME\\svc-bc"
PASSWORD = "bc-web-service-key-3319"
ROOT = Path(__file__).resolve().parents[3]
WRONG_COMPANY = "00000000-0000-0000-0000-000000000001"


@pytest.fixture
def bc():
    with bc_rest.make() as server:
        yield server


def make_bc(uri: str, **extra: Any) -> Connector:
    values: dict[str, Any] = {
        "name": "BC Online", "type": "bc_online", "api_type": "rest", "auth_type": "basic",
        "login": LOGIN, "password": PASSWORD, "uri": uri, "source_app": "BCPROD",
    }
    values.update(extra)
    return services.connector_save(Connector(**values))


def send_error(connector: Connector, change=None) -> BackOfficeError:
    with pytest.raises(BackOfficeError) as caught:
        BcRestClient(connector).send(change or samples.change())
    return caught.value


def probe_error(connector: Connector) -> BackOfficeError:
    with pytest.raises(BackOfficeError) as caught:
        BcRestClient(connector).probe()
    return caught.value


# --- Send -------------------------------------------------------------------------------------


def test_it_posts_the_staging_record_with_every_field_in_camel_case(bc):
    connector = make_bc(bc_rest.entity_set_url(bc), type="bc_onprem", auth_type="none")

    result = BcRestClient(connector).send(samples.change("create"))

    assert result.status_code == 201
    [stored] = bc.state.records
    assert {k: v for k, v in stored.items() if k not in ("id", "_company", "@odata.etag")} == {
        "sourceApp": "BCPROD", "sourceType": "SERVICE", "databaseAction": "I",
        "jobNo": "J-1001", "taskNo": "T-10", "appointmentId": 123,
        "appointmentGuid": samples.GUID, "subject": "Boiler service — Müller",
        "body": "Bring the spare valve.", "start": "2026-11-23T08:00:00Z",
        "end": "2026-11-23T10:30:00Z", "isAllDayEvent": False, "category": "SERVICE",
        "timeMarker": "URGENT", "importance": 2, "planningQuantity": 2.5,
        "planningUOM": "HOUR", "backofficeId": "SO-000042",
        "appointmentResources": [{"resourceNo": "R-ANN"}, {"resourceNo": "R-BOB"}],
    }
    assert stored["_company"] == bc_rest.COMPANY_ID
    assert '"@odata.etag"' in result.response_excerpt and stored["id"] in result.response_excerpt


@pytest.mark.parametrize(("action", "code"), [("create", "I"), ("update", "U"), ("delete", "D")])
def test_each_action_is_sent_as_its_database_action(bc, action, code):
    BcRestClient(make_bc(bc_rest.entity_set_url(bc))).send(samples.change(action))
    assert bc.state.records[0]["databaseAction"] == code


def test_it_sends_json_with_the_login_as_basic_auth(bc):
    bc.state.auth = AuthPolicy("basic", LOGIN, PASSWORD)

    result = BcRestClient(make_bc(bc_rest.entity_set_url(bc))).send(samples.change())

    [request] = bc.requests
    assert request.method == "POST" and request.header("content-type") == "application/json"
    assert request.header("authorization").startswith("Basic ")
    assert result.request is not None and result.request.headers["authorization"] == MASK


def test_auth_none_uses_the_service_account(bc, settings):
    settings.BACKOFFICE_SERVICE_LOGIN, settings.BACKOFFICE_SERVICE_PASSWORD = "svc", "svc-pass-1"
    bc.state.auth = AuthPolicy("basic", "svc", "svc-pass-1")
    connector = make_bc(bc_rest.entity_set_url(bc), type="bc_onprem", auth_type="none")

    assert BcRestClient(connector).send(samples.change()).status_code == 201


@pytest.mark.parametrize("auth_type", ["entra_id", "oauth2_basic", "oauth2_post"])
def test_each_token_auth_type_gets_a_token_for_business_centrals_default_scope(
    entra, bc, auth_type
):
    bc.state.auth = AuthPolicy("bearer", audience=BC_SCOPE)
    connector = make_bc(bc_rest.entity_set_url(bc), auth_type=auth_type, login="", password="",
                        **samples.token_fields(entra, auth_type))

    assert BcRestClient(connector).send(samples.change()).status_code == 201
    assert BcRestClient(connector).probe().status_code == 200
    assert entra.state.token_requests == 1  # the second call used the cached token
    assert entra.state.issued[0]["scope"] == BC_SCOPE


# --- Probe ------------------------------------------------------------------------------------


def test_the_probe_gets_the_entity_set_with_top_1_and_writes_nothing(bc):
    client = BcRestClient(make_bc(bc_rest.entity_set_url(bc)))
    for action in ("create", "update"):
        client.send(samples.change(action))
    bc.requests.clear()

    result = client.probe()

    assert result.status_code == 200
    assert result.detail == (
        "GET appointments?$top=1 answered HTTP 200 (1 record(s) read, nothing written)."
    )
    [request] = bc.requests
    assert (request.method, request.query) == ("GET", {"$top": ["1"]})
    assert len(bc.state.records) == 2


def test_the_probe_of_an_insert_only_page_passes_when_metadata_lists_the_entity_set():
    with bc_rest.make(allow_get=False) as server:
        result = BcRestClient(make_bc(bc_rest.entity_set_url(server))).probe()
        paths = [(r.method, r.path.rsplit("/", 1)[-1]) for r in server.requests]
    assert result.status_code == 405 and "$metadata lists 'appointments'" in result.detail
    assert paths == [("GET", "appointments"), ("GET", "$metadata")]


def test_the_probe_of_an_unknown_company_fails_and_the_hint_names_the_company(bc):
    error = probe_error(make_bc(bc_rest.entity_set_url(bc, company=WRONG_COMPANY)))

    assert error.permanent and error.status_code == 404
    assert "BadRequest_NotFound: No HTTP resource was found" in error.message
    assert "company is not found" in error.hint and "companies(…)" in error.hint


def test_the_probe_of_a_wrong_api_path_says_the_extension_may_be_missing(bc):
    uri = bc_rest.entity_set_url(bc).replace("dimeScheduler", "dimeSchedular")

    error = probe_error(make_bc(uri))

    assert error.permanent and error.status_code == 404
    assert "Dime.Scheduler API extension is installed" in error.hint


def test_the_probe_of_a_wrong_entity_set_name_names_it(bc):
    error = probe_error(make_bc(bc_rest.entity_set_url(bc) + "x"))
    assert "has no entity set 'appointmentsx'" in error.hint


def test_the_probe_fails_when_the_uri_answers_200_but_not_with_an_entity_set(bc):
    bc.fail(status=200, body=b"<html><body>Sign in</body></html>", count=1)

    error = probe_error(make_bc(bc_rest.entity_set_url(bc)))

    assert error.permanent and "not with an OData entity set" in error.message
    assert "/appointments" in error.hint


def test_the_metadata_url_is_at_the_api_root_and_top_is_added_literally():
    uri = ("https://bc.example.test:7048/BC/api/dimeSoftware/dimeScheduler/v1.0/companies(1)/"
           "appointments?tenant=t1")
    assert metadata_url(uri) == (
        "https://bc.example.test:7048/BC/api/dimeSoftware/dimeScheduler/v1.0/$metadata?tenant=t1"
    )
    assert with_top(uri).endswith("/appointments?tenant=t1&$top=1")


# --- Failures ---------------------------------------------------------------------------------


def test_a_400_odata_error_is_permanent_and_carries_business_centrals_code_and_message(bc):
    error = send_error(make_bc(bc_rest.entity_set_url(bc)), samples.change(source_app=""))

    assert error.permanent and error.status_code == 400
    assert error.message.startswith(
        "Business Central answered HTTP 400: Application_FieldValidationException: "
        "sourceApp must have a value in Appointment Staging"
    )
    assert "CorrelationId" in error.message
    assert "field mapping" in error.hint


def test_a_401_is_permanent_with_the_credentials_hint(bc):
    bc.state.auth = AuthPolicy("basic", LOGIN, "the-real-password")

    error = send_error(make_bc(bc_rest.entity_set_url(bc)))

    assert error.permanent and error.status_code == 401
    assert "Authentication_InvalidCredentials" in error.message
    assert "login and password" in error.hint


def test_a_403_hints_at_business_central_permission_sets(bc):
    bc.fail(status=403, body=b'{"error": {"code": "Authorization_Forbidden", "message": '
                             b'"You do not have the permission."}}')
    error = send_error(make_bc(bc_rest.entity_set_url(bc)))
    assert error.permanent and "permission sets" in error.hint


def test_a_404_on_send_hints_at_the_company_and_the_extension(bc):
    error = send_error(make_bc(bc_rest.entity_set_url(bc, company=WRONG_COMPANY)))
    assert error.permanent and error.status_code == 404
    assert "company id" in error.hint and "Dime.Scheduler API extension" in error.hint


def test_a_503_is_transient(bc):
    bc.fail(status=503, body=b'{"error": {"code": "Unknown", "message": "Service unavailable"}}')
    error = send_error(make_bc(bc_rest.entity_set_url(bc)))
    assert not error.permanent and error.status_code == 503
    assert "Unknown: Service unavailable" in error.message


def test_a_429_is_transient_and_its_retry_after_is_honoured(bc):
    bc.fail(status=429, headers={"Retry-After": "30"},
            body=b'{"error": {"code": "Application_TooManyRequests", "message": "Slow down."}}')
    error = send_error(make_bc(bc_rest.entity_set_url(bc)))
    assert not error.permanent and error.retry_after == 30


def test_a_hanging_business_central_is_cut_at_the_connectors_timeout(bc):
    bc.fail(hang=True)
    connector = make_bc(bc_rest.entity_set_url(bc), timeout_s=1)

    started = time.monotonic()
    error = send_error(connector)
    elapsed = time.monotonic() - started

    assert 0.9 <= elapsed < 2.5
    assert error.error_class == "Timeout" and not error.permanent


def test_a_redirect_is_permanent_with_the_redirect_hint(bc):
    bc.fail(status=302, headers={"Location": "https://login.example.test/"}, body=b"")
    error = send_error(make_bc(bc_rest.entity_set_url(bc)))
    assert error.permanent and error.status_code == 302
    assert "redirects to https://login.example.test/" in error.hint


# --- Secrets ----------------------------------------------------------------------------------


def test_no_secret_reaches_the_message_excerpt_request_record_or_logs(bc, caplog):
    caplog.set_level(logging.DEBUG)
    connector = make_bc(bc_rest.entity_set_url(bc))
    bc.fail(status=400, count=1, body=(
        f'{{"error": {{"code": "BadRequest", "message": "user {LOGIN} password {PASSWORD}"}}}}'
    ).encode())

    error = send_error(connector)
    result = BcRestClient(connector).send(samples.change())

    assert "BadRequest" in error.message
    record = result.request
    assert record is not None and record.headers["authorization"] == MASK
    for text in (str(error), error.response_excerpt, str(record), result.response_excerpt,
                 caplog.text):
        assert PASSWORD not in text


# --- Running alone ----------------------------------------------------------------------------


def test_the_fake_runs_alone_with_basic_auth():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.bc_rest", "--port", "0", "--auth", "basic",
         "--login", LOGIN, "--password", PASSWORD],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        entity_set = process.stdout.readline().split("entity set: ")[1].strip()
        assert "bc_rest listening on" in process.stdout.readline()
        client = BcRestClient(make_bc(entity_set))
        assert client.send(samples.change()).status_code == 201
        assert "1 record(s) read" in client.probe().detail
    finally:
        process.terminate()
        process.wait(timeout=10)
