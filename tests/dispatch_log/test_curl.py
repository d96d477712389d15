""""Copy as cURL": the recorded request as a safely quoted POSIX command, and the request
recorded for failed attempts too (webhook 4xx, SOAP fault), against the loopback fakes."""

from __future__ import annotations

import html
import shutil
import subprocess

import pytest
from django_q.conf import Conf

from connectors import delivery, services
from connectors.backoffices import soap_wsdl
from connectors.backoffices.redact import Redactor
from connectors.dispatch_log.curl import curl_command, latest_curl
from connectors.intake import IncomingEvent, events_accept
from connectors.models import Attempt, Connector
from tests.connectors.backoffices import samples
from tests.connectors.pipeline_factories import AttemptFactory
from tests.fakes import webhook_receiver
from tests.fakes.auth_gate import AuthPolicy
from tests.fakes.soap_server import CLIENT_FAULT, soap_server

pytestmark = pytest.mark.django_db

SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SOAP_PASSWORD = "soap-basic-password-5521"
PAGE_PATH = "/BC/WS/CRONUS%20International%20Ltd./Page/Appointment"


def shell_args(command: str) -> list[str]:
    """The arguments a POSIX shell passes to curl: run with `printf` in curl's place."""
    assert command.startswith("curl ")
    shell = shutil.which("sh")
    assert shell is not None
    printed = subprocess.run(
        [shell, "-c", "printf '%s\\0' " + command.removeprefix("curl ")],
        capture_output=True, check=True,
    ).stdout.decode()
    return ["curl", *printed.split("\0")[:-1]]


def curl_of(text: str) -> str:
    """The command in the page's <pre id="curl-command">."""
    start = text.index('id="curl-command">') + len('id="curl-command">')
    return text[start:text.index("</pre>", start)]


def test_the_command_quotes_every_argument_for_a_posix_shell():
    request = {
        "method": "post", "url": "https://bc.example.test/api?a=1&b=$(rm -rf ~)",
        "headers": {"Content-Type": "application/json", "Authorization": "[redacted]",
                    "Content-Length": "42", "Host": "bc.example.test"},
        "body": '{"subject": "O\'Brien `whoami` $HOME"}',
    }
    command = curl_command(request, Redactor())
    assert command is not None and command.startswith("curl -X POST ")

    assert shell_args(command) == [
        "curl", "-X", "POST", "https://bc.example.test/api?a=1&b=$(rm -rf ~)",
        "-H", "Content-Type: application/json", "-H", "Authorization: [redacted]",
        "--data-raw", '{"subject": "O\'Brien `whoami` $HOME"}',
    ]


def test_a_body_starting_with_at_is_sent_as_is_never_read_from_a_file():
    command = curl_command({"url": "https://x.test/", "body": "@/etc/passwd"}, Redactor())
    assert command is not None
    assert shell_args(command)[-2:] == ["--data-raw", "@/etc/passwd"]


def test_no_url_means_no_command():
    assert curl_command({}, Redactor()) is None
    assert curl_command({"method": "POST", "body": "x"}, Redactor()) is None


def test_the_newest_attempt_with_a_request_is_used_and_a_cut_body_is_flagged():
    older = AttemptFactory(request={"method": "POST", "url": "https://old.test/", "body": "{}"})
    newer = AttemptFactory(dispatch=older.dispatch,
                           request={"method": "POST", "url": "https://new.test/",
                                    "body": "x" * 10 + "\n…[cut]"})
    AttemptFactory(dispatch=older.dispatch, outcome="requested", request={})
    attempts = list(Attempt.objects.filter(dispatch=older.dispatch).order_by("number"))

    curl = latest_curl(attempts, Redactor())

    assert curl is not None and curl.attempt == newer and curl.body_cut
    assert "https://new.test/" in curl.command and not curl.has_masked
    assert latest_curl(attempts[2:], Redactor()) is None


# --- Failed attempts record their request too (connectors/delivery.py) -----------------------


@pytest.fixture(autouse=True)
def tasks_run_inline(monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)


def accept_one() -> int:
    event = IncomingEvent(event_id="e1", action="create", occurred_at=samples.change().occurred_at,
                          appointment=samples.appointment())
    [outcome] = events_accept(client=None, events=[event])
    [dispatch_id] = outcome.dispatch_ids
    return dispatch_id


def test_a_refused_webhook_delivery_keeps_its_request_for_the_curl(support_client):
    with webhook_receiver.make(secrets=[SIGNING_SECRET]) as receiver:
        services.connector_save(Connector(
            name="Hook", type="webhook", api_type="rest", auth_type="none",
            uri=receiver.url + "/hooks", source_app="BCPROD", signing_secret=SIGNING_SECRET,
        ))
        dispatch_id = accept_one()
        receiver.fail(status=422, body=b'{"error": "job_no J-1001 unknown"}')
        assert delivery.deliver(dispatch_id) == "failed"

    [attempt] = Attempt.objects.filter(dispatch_id=dispatch_id)
    assert attempt.outcome == "failed" and attempt.request["url"] == receiver.url + "/hooks"
    assert attempt.request["headers"]["webhook-signature"] == "[redacted]"
    text = html.unescape(support_client.get(f"/dispatches/{dispatch_id}/").content.decode())
    command = curl_of(text)
    args = shell_args(command)
    assert args[:4] == ["curl", "-X", "POST", receiver.url + "/hooks"]
    assert "webhook-signature: [redacted]" in args
    assert '"job_no":"J-1001"' in args[-1] and SIGNING_SECRET not in command


def test_a_soap_fault_keeps_the_envelope_with_its_soap_headers(support_client):
    soap_wsdl.forget()
    with soap_server(policy=AuthPolicy("basic", "svc-dime", SOAP_PASSWORD)) as page:
        page.state.inject(CLIENT_FAULT)
        services.connector_save(Connector(
            name="CRONUS NAV", type="nav", api_type="soap", auth_type="basic", login="svc-dime",
            password=SOAP_PASSWORD, uri=page.url + PAGE_PATH, source_app="BCPROD",
        ))
        dispatch_id = accept_one()
        assert delivery.deliver(dispatch_id) == "failed"
    soap_wsdl.forget()

    [attempt] = Attempt.objects.filter(dispatch_id=dispatch_id)
    assert attempt.error_class == "SoapClientFault"
    text = html.unescape(support_client.get(f"/dispatches/{dispatch_id}/").content.decode())
    args = shell_args(curl_of(text))
    headers = [args[i + 1] for i, arg in enumerate(args) if arg == "-H"]
    assert 'SOAPAction: "urn:microsoft-dynamics-schemas/page/appointment:Create"' in headers
    assert any(h.lower().startswith("content-type: text/xml") for h in headers)
    assert "Authorization: [redacted]" in headers
    assert "<ns0:Job_No>J-1001</ns0:Job_No>" in args[-1] and "Envelope" in args[-1]
    assert SOAP_PASSWORD not in text
