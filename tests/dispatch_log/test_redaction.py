"""A connector's secrets never appear on a dispatch log page or in the export: not even when
a stored text (an attempt's request, a response excerpt, an error, the payload) holds one by
mistake. Every shown text passes the connector's Redactor."""

from __future__ import annotations

import html
from urllib.parse import quote

import pytest

from tests.connectors.pipeline_factories import AttemptFactory, DispatchFactory, EventFactory

from .conftest import CLIENT_SECRET, PASSWORD, SECRETS, SIGNING_SECRET

pytestmark = pytest.mark.django_db


@pytest.fixture
def leaky_dispatch(secret_connector):
    """A dispatch whose stored texts each hold a secret, as if redaction had failed upstream."""
    event = EventFactory(appointment__data={
        "job_no": "J-1", "subject": f"Call back, the code is {PASSWORD}",
        "resources": [{"resource_no": "R1"}],
    })
    dispatch = DispatchFactory(
        event=event, connector=secret_connector, status="failed",
        last_error=f"401 for client_secret={CLIENT_SECRET}",
        last_hint=f"Check the password {PASSWORD}.",
    )
    AttemptFactory(
        dispatch=dispatch, outcome="failed", status_code=401,
        message=f"Refused with {SIGNING_SECRET}", hint=f"Password {PASSWORD} is wrong",
        response_excerpt=f'{{"error": "bad secret {CLIENT_SECRET}"}}',
        request={
            "method": "POST",
            "url": f"https://bc.example.test/in?password={quote(PASSWORD)}",
            "headers": {"Authorization": "[redacted]", "X-Debug": SIGNING_SECRET,
                        "Content-Type": "application/json"},
            "body": f'{{"client_secret": "{CLIENT_SECRET}", "note": "{PASSWORD}"}}',
        },
    )
    return dispatch


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        for form in (secret, quote(secret, safe=""), html.escape(secret)):
            assert form not in text, f"a secret leaked: …{secret[-4:]}"


def test_the_list_shows_no_secret(support_client, leaky_dispatch):
    text = support_client.get("/dispatches/").content.decode()
    assert f'data-dispatch="{leaky_dispatch.pk}"' in text
    assert_no_secret(html.unescape(text))
    assert "[redacted]" in html.unescape(text)


def test_the_detail_and_its_curl_show_no_secret(support_client, leaky_dispatch):
    text = html.unescape(
        support_client.get(f"/dispatches/{leaky_dispatch.pk}/").content.decode()
    )
    assert 'id="curl-command">curl -X POST' in text
    assert_no_secret(text)
    curl = text[text.index('id="curl-command">'):]
    curl = curl[:curl.index("</pre>")]
    assert "X-Debug: [redacted]" in curl and '"client_secret": "[redacted]"' in curl
    assert "password=[redacted]" in curl


def test_the_export_shows_no_secret(support_client, leaky_dispatch):
    response = support_client.get("/dispatches/export.csv")
    text = b"".join(response.streaming_content).decode()
    assert str(leaky_dispatch.uid) in text
    assert_no_secret(text)
