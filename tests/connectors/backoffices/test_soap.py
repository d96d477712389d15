"""The Business Central / NAV SOAP client against the loopback page web service.

zeep loads the fake's real WSDL and posts real SOAP 1.1 envelopes; assertions read what the
fake parsed out of them. The real NAV 2016 page WSDLs (fixtures beside DESIGN.md) go through the
same code paths, served by the fake.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors import services
from connectors.backoffices import soap_wsdl
from connectors.backoffices.auth import BC_SCOPE
from connectors.backoffices.base import BackOfficeError
from connectors.backoffices.connection import run_connection_test
from connectors.backoffices.redact import MASK
from connectors.backoffices.soap import SoapClient, is_transient_fault
from connectors.models import Connector
from tests.fakes.auth_gate import AuthPolicy
from tests.fakes.soap_page import SoapFault
from tests.fakes.soap_server import (
    CLIENT_FAULT,
    NAV_BUSINESS_ERROR,
    NAV_RECORD_LOCKED,
    SERVER_FAULT,
    soap_server,
)
from tests.support import require

from . import samples

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
# The real NAV samples live beside DESIGN.md, outside the repository (the project keeps its own
# fixtures); DIMECONNECT_SHARED_FIXTURES points elsewhere when they are not at ../shared.
FIXTURES = Path(os.environ.get("DIMECONNECT_SHARED_FIXTURES", ROOT.parent / "shared" / "fixtures"))
PAGE_PATH = "/BC/WS/CRONUS%20International%20Ltd./Page/Appointment"
LOGIN = "svc-dime"
PASSWORD = "soap-basic-password-5521"
TEN_OPERATIONS = [
    "Read", "ReadByRecId", "ReadMultiple", "IsUpdated", "GetRecIdFromKey",
    "Create", "CreateMultiple", "Update", "UpdateMultiple", "Delete",
]
PAGE_NS = "urn:microsoft-dynamics-schemas/page/appointment"


@pytest.fixture(autouse=True)
def _empty_wsdl_cache():
    soap_wsdl.forget()
    yield
    soap_wsdl.forget()


@pytest.fixture
def page():
    """The fake Appointment page, open to anyone."""
    with soap_server() as server:
        yield server


@pytest.fixture
def basic_page():
    """The fake Appointment page behind Basic auth."""
    with soap_server(policy=AuthPolicy("basic", LOGIN, PASSWORD)) as server:
        yield server


def make_soap(uri: str, **extra: Any) -> Connector:
    values: dict[str, Any] = {
        "name": "CRONUS NAV", "type": "nav", "api_type": "soap", "auth_type": "none",
        "uri": uri, "source_app": "BCPROD",
    }
    values.update(extra)
    return services.connector_save(Connector(**values))


def basic_soap(server, **extra: Any) -> Connector:
    return make_soap(server.url + PAGE_PATH, auth_type="basic", login=LOGIN, password=PASSWORD,
                     **extra)


def wsdl_gets(server) -> int:
    return sum(1 for r in server.requests if r.method == "GET")


def posts(server) -> list:
    return [r for r in server.requests if r.method == "POST"]


def send_error(connector: Connector, change=None) -> BackOfficeError:
    with pytest.raises(BackOfficeError) as caught:
        SoapClient(connector).send(change or samples.change())
    return caught.value


# --- What Create sends ------------------------------------------------------------------------


def test_create_sends_the_record_in_the_page_element_names(page):
    connector = make_soap(page.url + PAGE_PATH)

    result = SoapClient(connector).send(samples.change("create"))

    [stored] = page.state.records()
    assert {k: v for k, v in stored.items() if k not in ("Key", "Appointment_Resources")} == {
        "Entry_No": "1",
        "Source_App": "BCPROD",
        "Source_Type": "SERVICE",
        "Database_Action": "I",
        "Job_No": "J-1001",
        "Task_No": "T-10",
        "Appointment_Id": "123",
        "Appointment_Guid": samples.GUID,
        "Subject": "Boiler service — Müller",
        "Body": "Bring the spare valve.",
        "Start": "2026-11-23T08:00:00Z",
        "End": "2026-11-23T10:30:00Z",
        "Is_All_Day_Event": "false",
        "Category": "SERVICE",
        "Time_Marker": "URGENT",
        "Importance": "2",
        "Planning_Quantity": "2.5",
        "Planning_UOM": "HOUR",
        "Backoffice_Id": "SO-000042",
    }
    [post] = posts(page)
    assert post.path == PAGE_PATH
    assert post.header("SOAPAction") == f'"{PAGE_NS}:Create"'
    assert post.header("Content-Type").startswith("text/xml")
    assert result.status_code == 200
    assert stored["Key"] in result.response_excerpt  # the record came back with its Key
    assert result.request is not None and result.request.method == "POST"
    assert result.request.url == page.url + PAGE_PATH
    assert "<ns0:Source_App>BCPROD</ns0:Source_App>" in result.request.body
    assert result.duration_ms >= 0


def test_the_resources_arrive_as_lines_of_the_subpage_part(page):
    SoapClient(make_soap(page.url + PAGE_PATH)).send(samples.change())

    [stored] = page.state.records()
    assert [line["Resource_No"] for line in stored["Appointment_Resources"]] == ["R-ANN", "R-BOB"]
    assert all(line["Key"] for line in stored["Appointment_Resources"])


def test_an_appointment_without_resources_sends_no_lines_part(page):
    SoapClient(make_soap(page.url + PAGE_PATH)).send(samples.change(resources=[]))

    [stored] = page.state.records()
    assert "Appointment_Resources" not in stored
    assert b"Appointment_Resources" not in posts(page)[0].body


@pytest.mark.parametrize(("action", "code"), [("create", "I"), ("update", "U"), ("delete", "D")])
def test_every_action_is_a_create_of_a_staging_record_with_its_database_action(
    page, action, code
):
    SoapClient(make_soap(page.url + PAGE_PATH)).send(samples.change(action))

    [stored] = page.state.records()
    assert stored["Database_Action"] == code
    assert posts(page)[0].header("SOAPAction") == f'"{PAGE_NS}:Create"'


def test_operations_go_to_the_connector_uri_not_the_address_the_wsdl_publishes(page):
    # NAV publishes its own host name; behind a proxy that name does not resolve.
    page.state.address = "http://nav-internal.invalid:7047/DynamicsNAV90/WS/CRONUS/Page/Appointment"

    SoapClient(make_soap(page.url + PAGE_PATH)).send(samples.change())

    assert len(page.state.records()) == 1


def test_a_wsdl_query_is_dropped_from_the_post_address_and_a_tenant_is_kept(page):
    connector = make_soap(page.url + PAGE_PATH + "?tenant=cronus&wsdl=1")

    SoapClient(connector).send(samples.change())

    [get] = [r for r in page.requests if r.method == "GET"]
    assert get.query == {"tenant": ["cronus"], "wsdl": ["1"]}
    [post] = posts(page)
    assert post.query == {"tenant": ["cronus"]}


def test_it_works_over_https_with_the_ca_from_http_ca_bundle(test_ca, ca_bundle):
    with soap_server(tls=test_ca.server_context()) as server:
        result = SoapClient(make_soap(server.url + PAGE_PATH)).send(samples.change())

        assert server.url.startswith("https://")
        assert result.status_code == 200 and len(server.state.records()) == 1


# --- Authentication ---------------------------------------------------------------------------


def test_basic_auth_with_the_right_password_is_accepted(basic_page):
    SoapClient(basic_soap(basic_page)).send(samples.change())

    assert len(basic_page.state.records()) == 1
    assert all(r.header("Authorization").startswith("Basic ") for r in basic_page.requests)


def test_basic_auth_with_a_wrong_password_fails_permanently_with_a_login_hint(basic_page):
    connector = basic_soap(basic_page)
    connector.password = "not-the-password"

    error = send_error(connector)

    assert error.permanent and error.status_code == 401
    assert "HTTP 401" in error.message
    assert "login and password" in error.hint
    assert basic_page.state.records() == []


def test_auth_type_none_sends_the_service_account(basic_page, settings):
    settings.BACKOFFICE_SERVICE_LOGIN = LOGIN
    settings.BACKOFFICE_SERVICE_PASSWORD = PASSWORD

    SoapClient(make_soap(basic_page.url + PAGE_PATH)).send(samples.change())

    assert len(basic_page.state.records()) == 1


def test_auth_type_none_without_a_service_account_gets_401_with_a_service_account_hint(
    basic_page,
):
    error = send_error(make_soap(basic_page.url + PAGE_PATH))

    assert error.permanent and error.status_code == 401
    assert "BACKOFFICE_SERVICE_LOGIN" in error.hint


@pytest.mark.parametrize(("auth_type", "scheme"), [("ntlm", "ntlm"), ("windows", "negotiate")])
def test_windows_authentication_does_a_real_handshake(auth_type, scheme):
    policy = AuthPolicy(scheme, "CRONUS\\svc-soap", "Windows-pass-1")
    with soap_server(policy=policy) as server:
        connector = make_soap(server.url + PAGE_PATH, auth_type=auth_type,
                              login="CRONUS\\svc-soap", password="Windows-pass-1")
        SoapClient(connector).probe()
        SoapClient(connector).send(samples.change())

        assert len(server.state.records()) == 1


@pytest.mark.parametrize(("auth_type", "scheme"), [("ntlm", "ntlm"), ("windows", "negotiate")])
def test_windows_authentication_with_a_wrong_password_names_the_windows_account(
    auth_type, scheme
):
    policy = AuthPolicy(scheme, "CRONUS\\svc-soap", "Windows-pass-1")
    with soap_server(policy=policy) as server:
        connector = make_soap(server.url + PAGE_PATH, auth_type=auth_type,
                              login="CRONUS\\svc-soap", password="Windows-pass-2")
        with pytest.raises(BackOfficeError) as caught:
            SoapClient(connector).probe()

    assert caught.value.permanent and caught.value.status_code == 401
    assert "DOMAIN\\user" in caught.value.hint


@pytest.mark.parametrize("auth_type", ["entra_id", "oauth2_basic", "oauth2_post"])
def test_each_token_auth_type_sends_a_bearer_token_for_business_centrals_scope(entra, auth_type):
    with soap_server(policy=AuthPolicy("bearer", audience=BC_SCOPE)) as server:
        connector = make_soap(server.url + PAGE_PATH, type="bc_online", auth_type=auth_type,
                              **samples.token_fields(entra, auth_type))
        SoapClient(connector).probe()
        SoapClient(connector).send(samples.change())

        assert len(server.state.records()) == 1
        assert all(r.header("Authorization").startswith("Bearer ") for r in server.requests)
    assert entra.state.token_requests == 1  # the WSDL load and the Create shared the token


def test_a_refused_token_is_fetched_again_once_then_the_401_is_permanent(entra):
    with soap_server(policy=AuthPolicy("bearer", audience=BC_SCOPE)) as server:
        connector = make_soap(server.url + PAGE_PATH, type="bc_online", auth_type="entra_id",
                              scope="https://example.invalid/.default",
                              **samples.token_fields(entra, "entra_id"))
        error = send_error(connector)

    assert error.permanent and error.status_code == 401
    assert "refused a freshly fetched token" in error.hint
    assert entra.state.token_requests == 2


# --- Faults and statuses ----------------------------------------------------------------------


def test_a_nav_business_error_is_permanent_and_carries_the_faultstring(page):
    page.state.inject(NAV_BUSINESS_ERROR)

    error = send_error(make_soap(page.url + PAGE_PATH))

    assert error.permanent
    assert error.message == (
        "Microsoft Dynamics NAV answered with a SOAP fault (NavCSideRecordNotFoundException): "
        "The Job does not exist. Identification fields and values: No.='J-404'"
    )
    assert "refused the record" in error.hint
    assert error.status_code == 500 and error.error_class == "SoapClientFault"
    assert "NavCSideRecordNotFoundException" in error.response_excerpt


def test_a_soap_client_fault_is_permanent(page):
    page.state.inject(CLIENT_FAULT)

    error = send_error(make_soap(page.url + PAGE_PATH))

    assert error.permanent
    assert error.message.endswith("SOAP fault (Client): The Appointment_Guid field must "
                                  "contain a GUID.")


def test_a_soap_server_fault_is_transient(page):
    page.state.inject(SERVER_FAULT)

    error = send_error(make_soap(page.url + PAGE_PATH))

    assert not error.permanent and error.error_class == "SoapServerFault"
    assert "SOAP fault (Server): The server was unable to process the request" in error.message
    assert "retries" in error.hint


def test_a_record_locked_by_another_session_is_transient(page):
    page.state.inject(NAV_RECORD_LOCKED)

    error = send_error(make_soap(page.url + PAGE_PATH))

    assert not error.permanent
    assert "locked for use in another session" in error.message
    assert "DimeConnect retries" in error.hint


@pytest.mark.parametrize(
    ("code", "message", "transient"),
    [
        ("s:Client", "Unauthorized The credentials provided are incorrect", False),
        ("SOAP-ENV:Client.Authentication", "x", False),
        ("s:Server", "anything", True),
        ("a:InternalServiceFault", "The server was unable to process the request", True),
        ("a:Microsoft.Dynamics.Nav.Types.Exceptions.NavNCLDialogException",
         "Customer 10000 is blocked.", False),
        ("a:Microsoft.Dynamics.Nav.Types.Exceptions.NavNCLDialogException",
         "Appointment 5 is locked and cannot be changed.", False),
        ("a:Microsoft.Dynamics.Nav.Types.Exceptions.NavCSideException",
         "The operation could not complete because a record in the Appointment table was "
         "locked by another user. Please retry the activity.", True),
        ("a:Microsoft.Dynamics.Nav.Types.Exceptions.NavCSideException",
         "Your activity was deadlocked with another user modifying the Appointment table.", True),
        ("a:ActionNotSupported", "ContractFilter mismatch", False),
    ],
)
def test_faults_are_classified_by_code_and_nav_lock_wording(code, message, transient):
    assert is_transient_fault(code, message) is transient


def test_a_503_is_transient_and_keeps_the_retry_after(page):
    connector = make_soap(page.url + PAGE_PATH)
    SoapClient(connector).probe()  # the WSDL is cached; only the POST meets the 503
    page.fail(status=503, body=b"Service Unavailable", headers={"Retry-After": "120",
                                                               "Content-Type": "text/plain"})

    error = send_error(connector)

    assert not error.permanent and error.status_code == 503
    assert error.retry_after == 120
    assert "HTTP 503" in error.message


def test_a_500_without_a_soap_envelope_is_transient(page):
    connector = make_soap(page.url + PAGE_PATH)
    SoapClient(connector).probe()
    page.fail(status=500, body=b"<html><body>Internal Server Error</body></html>",
              headers={"Content-Type": "text/html"})

    error = send_error(connector)

    assert not error.permanent and error.status_code == 500


def test_a_missing_page_is_permanent_with_a_uri_hint(page):
    page.fail(status=404, body=b"", headers={})

    error = send_error(make_soap(page.url + PAGE_PATH))

    assert error.permanent and error.status_code == 404
    assert "check the web service URI" in error.hint


def test_a_malformed_envelope_gets_a_soap_client_fault_from_the_fake(page):
    answer = requests.post(page.url + PAGE_PATH, data=b"<not-soap/>", timeout=5,
                           headers={"SOAPAction": f'"{PAGE_NS}:Create"'})

    assert answer.status_code == 500
    assert "<faultcode>s:Client</faultcode>" in answer.text


# --- The WSDL: cache, wrong URIs, real NAV samples --------------------------------------------


def test_the_wsdl_is_loaded_once_and_reused_by_later_sends(page):
    connector = make_soap(page.url + PAGE_PATH)

    SoapClient(connector).send(samples.change())
    SoapClient(Connector.objects.get(pk=connector.pk)).send(samples.change("update"))

    assert wsdl_gets(page) == 1 and len(posts(page)) == 2


def test_a_changed_password_loads_the_wsdl_again(basic_page):
    connector = basic_soap(basic_page)
    SoapClient(connector).send(samples.change())

    basic_page.state.policy = AuthPolicy("basic", LOGIN, "the-new-password-9")
    connector.password = "the-new-password-9"
    services.connector_save(connector)
    SoapClient(Connector.objects.get(pk=connector.pk)).send(samples.change())

    assert wsdl_gets(basic_page) == 2 and len(basic_page.state.records()) == 2


def test_a_changed_uri_loads_the_wsdl_again(page):
    connector = make_soap(page.url + PAGE_PATH)
    SoapClient(connector).send(samples.change())

    connector.uri = page.url + "/BC/WS/Other%20Company/Page/Appointment"
    SoapClient(connector).send(samples.change())

    assert [r.path for r in page.requests if r.method == "GET"] == [
        PAGE_PATH, "/BC/WS/Other%20Company/Page/Appointment",
    ]


def test_a_cached_wsdl_expires_so_a_republished_page_is_picked_up(page, monkeypatch):
    monkeypatch.setattr(soap_wsdl, "WSDL_TTL_S", 0.0)
    connector = make_soap(page.url + PAGE_PATH)

    SoapClient(connector).send(samples.change())
    SoapClient(connector).send(samples.change())

    assert wsdl_gets(page) == 2


def test_a_failed_send_drops_the_cached_wsdl_so_the_next_attempt_reloads_it(page):
    connector = make_soap(page.url + PAGE_PATH)
    SoapClient(connector).send(samples.change())
    page.state.inject(SERVER_FAULT)
    send_error(connector)

    SoapClient(connector).send(samples.change())

    assert wsdl_gets(page) == 2


@pytest.mark.parametrize(
    ("body", "content_type", "seen"),
    [
        (b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form></form></body>"
         b"</html>", "text/html", "an HTML page"),
        (b'{"value": []}', "application/json", "something that is not a WSDL"),
        (b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"/>',
         "application/xml", "something that is not a WSDL"),
    ],
)
def test_a_uri_that_does_not_serve_a_wsdl_gets_a_clear_permanent_error(page, body,
                                                                      content_type, seen):
    page.fail(status=200, body=body, headers={"Content-Type": content_type})

    error = send_error(make_soap(page.url + PAGE_PATH))

    assert error.permanent and error.error_class == "NotAWsdl"
    assert seen in error.message and "the URI does not serve a WSDL" in error.message
    assert "/WS/<company>/Page/Appointment" in error.hint
    assert soap_wsdl.cached_page(Connector.objects.get(name="CRONUS NAV")) is None


def test_a_failed_wsdl_load_is_not_cached(page):
    connector = make_soap(page.url + PAGE_PATH)
    page.fail(status=503, count=1)
    send_error(connector)

    SoapClient(connector).send(samples.change())

    assert wsdl_gets(page) == 2 and len(page.state.records()) == 1


@pytest.mark.parametrize(
    ("fixture", "record"), [("nav2016-page-customer.wsdl", "Customer"),
                            ("nav2016-page-journal.wsdl", "Journal")],
)
def test_real_nav_page_wsdls_load_and_their_ten_operations_are_reported(page, fixture, record):
    require((FIXTURES / fixture).exists(), f"the real NAV sample {FIXTURES / fixture}")
    page.state.wsdl_text = (FIXTURES / fixture).read_text(encoding="utf-8")
    connector = make_soap(page.url + "/DynamicsNAV90/WS/CRONUS/Page/" + record)

    loaded = soap_wsdl.load_page(connector, redactor=SoapClient(connector).redactor,
                                 deadline=time.monotonic() + 5, what="NAV")
    with pytest.raises(BackOfficeError) as caught:
        SoapClient(connector).probe()

    assert list(loaded.operations) == TEN_OPERATIONS
    assert loaded.record_element == record
    assert loaded.address == connector.uri  # not the http://kenedy:7047/… the file names
    error = caught.value
    assert error.permanent and error.error_class == "WrongService"
    assert f"offers Create ({', '.join(TEN_OPERATIONS)})" in error.message
    assert f"but its {record} has no Source_App, Source_Type" in error.message
    assert "not the Appointment page" in error.message
    assert posts(page) == []


def test_the_probe_reports_the_operations_and_writes_nothing(page):
    result = SoapClient(make_soap(page.url + PAGE_PATH)).probe()

    assert result.status_code == 200
    assert "offers Create with every field DimeConnect sends" in result.detail
    assert "operations: " + ", ".join(TEN_OPERATIONS) in result.detail
    assert posts(page) == [] and page.state.records() == []


def test_the_probe_always_loads_the_wsdl_afresh(page):
    connector = make_soap(page.url + PAGE_PATH)
    SoapClient(connector).send(samples.change())

    SoapClient(connector).probe()

    assert wsdl_gets(page) == 2


CODEUNIT_WSDL = """<?xml version="1.0" encoding="utf-8"?>
<definitions xmlns:tns="urn:microsoft-dynamics-schemas/codeunit/DimeScheduler"
    targetNamespace="urn:microsoft-dynamics-schemas/codeunit/DimeScheduler"
    xmlns="http://schemas.xmlsoap.org/wsdl/">
  <types>
    <schema elementFormDefault="qualified"
        targetNamespace="urn:microsoft-dynamics-schemas/codeunit/DimeScheduler"
        xmlns="http://www.w3.org/2001/XMLSchema">
      <element name="ProcessAppointment"><complexType><sequence>
        <element minOccurs="1" maxOccurs="1" name="appointmentXml" type="string"/>
      </sequence></complexType></element>
      <element name="ProcessAppointment_Result"><complexType><sequence>
        <element minOccurs="1" maxOccurs="1" name="return_value" type="boolean"/>
      </sequence></complexType></element>
    </schema>
  </types>
  <message name="ProcessAppointment">
    <part name="parameters" element="tns:ProcessAppointment"/>
  </message>
  <message name="ProcessAppointment_Result">
    <part name="parameters" element="tns:ProcessAppointment_Result"/>
  </message>
  <portType name="DimeScheduler_Port">
    <operation name="ProcessAppointment">
      <input name="ProcessAppointment" message="tns:ProcessAppointment"/>
      <output name="ProcessAppointment_Result" message="tns:ProcessAppointment_Result"/>
    </operation>
  </portType>
  <binding name="DimeScheduler_Binding" type="tns:DimeScheduler_Port">
    <binding transport="http://schemas.xmlsoap.org/soap/http"
        xmlns="http://schemas.xmlsoap.org/wsdl/soap/"/>
    <operation name="ProcessAppointment">
      <operation
soapAction="urn:microsoft-dynamics-schemas/codeunit/DimeScheduler:ProcessAppointment"
          style="document" xmlns="http://schemas.xmlsoap.org/wsdl/soap/"/>
      <input name="ProcessAppointment">
        <body use="literal" xmlns="http://schemas.xmlsoap.org/wsdl/soap/"/>
      </input>
      <output name="ProcessAppointment_Result">
        <body use="literal" xmlns="http://schemas.xmlsoap.org/wsdl/soap/"/>
      </output>
    </operation>
  </binding>
  <service name="DimeScheduler">
    <port name="DimeScheduler_Port" binding="tns:DimeScheduler_Binding">
      <address location="http://localhost:7047/BC/WS/CRONUS/Codeunit/DimeScheduler" xmlns="http://schemas.xmlsoap.org/wsdl/soap/"/>
    </port>
  </service>
</definitions>
"""


def test_a_codeunit_uri_is_refused_naming_the_operations_it_offers(page):
    page.state.wsdl_text = CODEUNIT_WSDL
    connector = make_soap(page.url + "/BC/WS/CRONUS/Codeunit/DimeScheduler")

    with pytest.raises(BackOfficeError) as caught:
        SoapClient(connector).probe()
    error = send_error(connector)

    for problem in (caught.value, error):
        assert problem.permanent and problem.error_class == "WrongService"
        assert problem.message == ("The web service DimeScheduler at this URI offers no Create "
                                   "operation; it offers: ProcessAppointment.")
        assert "not at a codeunit" in problem.hint
    assert posts(page) == []


# --- Timeouts ---------------------------------------------------------------------------------


def test_a_hanging_server_is_cut_at_the_connectors_timeout(page):
    connector = make_soap(page.url + PAGE_PATH, timeout_s=1)
    page.fail(hang=True)

    started = time.monotonic()
    error = send_error(connector)
    elapsed = time.monotonic() - started

    assert 0.9 <= elapsed < 2.0
    assert not error.permanent and error.error_class == "Timeout"
    assert error.message == "No answer from 127.0.0.1 within 1 s."


def test_a_wsdl_load_and_the_create_share_one_timeout(page):
    connector = make_soap(page.url + PAGE_PATH, timeout_s=1)
    page.fail(delay_s=0.6, count=1)  # the WSDL takes 0.6 s …
    page.state.inject(SoapFault("s:Server", "late", delay_s=5))  # … and the Create hangs

    started = time.monotonic()
    error = send_error(connector)
    elapsed = time.monotonic() - started

    assert 0.9 <= elapsed < 1.5  # the Create got only what was left of the 1 s
    assert not error.permanent and error.error_class == "Timeout"


def test_a_probe_of_a_hanging_server_answers_within_the_timeout(page):
    page.fail(hang=True)

    started = time.monotonic()
    with pytest.raises(BackOfficeError) as caught:
        SoapClient(make_soap(page.url + PAGE_PATH, timeout_s=1)).probe()

    assert time.monotonic() - started < 2.0
    assert caught.value.error_class == "Timeout"


# --- Secrets ------------------------------------------------------------------------------------


def test_no_secret_reaches_the_request_record_the_excerpt_or_the_logs(basic_page, caplog):
    caplog.set_level(logging.DEBUG)
    connector = basic_soap(basic_page)

    # The back office echoes what it got (a subject that happens to contain the password).
    result = SoapClient(connector).send(samples.change(subject=f"call {PASSWORD} back"))

    assert result.request is not None
    assert result.request.headers["Authorization"] == MASK
    stored = repr(result)
    assert PASSWORD not in stored and MASK in result.request.body
    assert PASSWORD not in caplog.text


def test_no_secret_reaches_the_error_message_hint_or_excerpt(basic_page, caplog):
    caplog.set_level(logging.DEBUG)
    connector = basic_soap(basic_page)
    basic_page.state.inject(SoapFault(
        "a:Microsoft.Dynamics.Nav.Types.Exceptions.NavNCLDialogException",
        f"Login {LOGIN} with password {PASSWORD} may not insert Appointment.",
    ))

    error = send_error(connector)

    assert f"with password {MASK} may not" in error.message
    for text in (error.message, error.hint, error.response_excerpt, str(error), caplog.text):
        assert PASSWORD not in text


# --- The fake on its own ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_fake_runs_alone_and_serves_its_wsdl_behind_basic_auth():
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.soap_server", "--port", str(port), "--auth", "basic",
         "--login", LOGIN, "--password", PASSWORD],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        assert "listening on" in process.stdout.readline()
        url = f"http://127.0.0.1:{port}{PAGE_PATH}?wsdl"
        assert requests.get(url, timeout=5).status_code == 401
        answer = requests.get(url, auth=(LOGIN, PASSWORD), timeout=5)
        assert answer.status_code == 200
        assert f'location="http://127.0.0.1:{port}{PAGE_PATH}"' in answer.text
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- "Test connection" through this client -----------------------------------------------------


def test_test_connection_is_green_against_the_page_and_red_with_a_login_hint_for_a_bad_password(
    basic_page,
):
    connector = basic_soap(basic_page)

    good = run_connection_test(connector)
    connector.password = "broken-password"
    bad = run_connection_test(connector)

    assert good.ok and [s.name for s in good.steps] == ["Resolve and connect", "Probe"]
    assert "offers Create" in good.steps[-1].detail
    assert not bad.ok and bad.steps[-1].name == "Probe"
    assert "HTTP 401" in bad.message and "login and password" in bad.hint
    assert basic_page.state.records() == []
