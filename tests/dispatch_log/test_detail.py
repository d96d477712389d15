"""/dispatches/<id>/: the event, the payload, every attempt, the next attempt, siblings,
action URIs, and "Retry now" with its audit record."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from connectors.action_uris import RenderedActionUri
from connectors.dispatch_log import present
from connectors.models import ActionUri, Attempt, Dispatch
from tests.connectors.pipeline_factories import (
    AttemptFactory,
    ConnectorFactory,
    DispatchFactory,
    EventFactory,
)

pytestmark = pytest.mark.django_db


def page(client, dispatch: Dispatch) -> str:
    response = client.get(f"/dispatches/{dispatch.pk}/")
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def section(text: str, element_id: str) -> str:
    """The page's part from the element with this id to the next module."""
    start = text.index(f'id="{element_id}"')
    end = text.find('<div class="module"', start)
    return text[start:end if end != -1 else None]


def test_it_shows_the_inbound_event_the_payload_and_the_why(support_client):
    dispatch = DispatchFactory(
        status="failed", last_error="Business Central refused the record: Job J-404 is unknown.",
        last_hint="Fix the job in Business Central, then retry.", last_status_code=400,
        event__event_id="ev-from-bc-17", event__appointment__job_no="J-404",
    )
    text = page(support_client, dispatch)

    summary = section(text, "summary")
    assert "Failed" in summary and "Job J-404 is unknown." in summary
    assert "Fix the job in Business Central, then retry." in summary
    event = section(text, "event")
    assert "ev-from-bc-17" in event and "via api" in event and "Stale</th><td>no" in event
    payload = section(text, "payload")
    assert '"job_no": "J-404"' in payload and '"resource_no": "R1"' in payload
    assert "R1" in section(text, "appointment")
    assert dispatch.message_id in section(text, "dispatch")


def test_every_attempt_is_listed_with_its_details(support_client):
    dispatch = DispatchFactory(status="retrying",
                               next_attempt_at=timezone.now() + timedelta(minutes=5))
    AttemptFactory(dispatch=dispatch, duration_ms=812, status_code=503,
                   error_class="HTTPStatusError", response_excerpt="<h1>Down for maintenance</h1>")
    AttemptFactory(dispatch=dispatch, outcome="requested", user="sam.support", status_code=None,
                   error_class="", message="Retry requested by sam.support.", hint="",
                   response_excerpt="")
    text = page(support_client, dispatch)
    attempts = section(text, "attempts")

    assert attempts.count('class="dc-attempt ') == 2
    for shown in ("812 ms", "503", "HTTPStatusError", "<h1>Down for maintenance</h1>",
                  "The back office answered 503 Service Unavailable.",
                  "retries on its schedule", "Retry requested", "sam.support"):
        assert shown in attempts
    assert "<pre class=\"dc-excerpt\">" in attempts
    assert dispatch.next_attempt_at.strftime("%Y-%m-%d %H:%M") in section(text, "summary")


def test_it_links_the_appointments_other_dispatches_and_says_what_it_waits_for(support_client):
    first = DispatchFactory(status="retrying")
    other_connector = ConnectorFactory(name="Second back office")
    elsewhere = DispatchFactory(event=first.event, connector=other_connector, status="succeeded")
    later = DispatchFactory(event=EventFactory(appointment=first.appointment, action="update"),
                            connector=first.connector, status="pending")
    DispatchFactory()  # another appointment's

    text = page(support_client, later)
    others = section(text, "other-dispatches")
    assert f'href="/dispatches/{first.pk}/"' in others
    assert f'href="/dispatches/{elsewhere.pk}/"' in others and "Second back office" in others
    assert others.count('href="/dispatches/') == 2
    assert f"dispatch {first.pk}</a> (Retrying)" in section(text, "summary")


def test_a_quarantined_connector_is_named_as_the_reason_it_waits(support_client):
    dispatch = DispatchFactory(status="retrying")
    type(dispatch.connector).objects.filter(pk=dispatch.connector_id).update(
        quarantined_at=timezone.now()
    )
    assert "quarantined since" in section(page(support_client, dispatch), "summary")


def test_retry_now_writes_the_audit_attempt_with_the_user_and_makes_it_pending(
    support_client, support_user
):
    dispatch = DispatchFactory(status="failed", attempts=8, next_attempt_at=None)
    AttemptFactory(dispatch=dispatch, outcome="failed")

    response = support_client.post(f"/dispatches/{dispatch.pk}/retry/")

    assert response.status_code == 302 and response["Location"] == f"/dispatches/{dispatch.pk}/"
    dispatch.refresh_from_db()
    assert dispatch.status == "pending" and dispatch.attempts == 0
    assert dispatch.next_attempt_at is not None
    audit = Attempt.objects.filter(dispatch=dispatch).order_by("number").last()
    assert audit is not None and (audit.number, audit.outcome, audit.user) == (
        2, "requested", "sam.support"
    )
    [message] = get_messages(response.wsgi_request)
    assert str(message).startswith(f"Retry requested: dispatch {dispatch.pk} is due now")
    followed = page(support_client, dispatch)
    assert "Retry requested: dispatch" in followed  # the message, on the page it returns to
    assert "sam.support" in section(followed, "attempts")


@pytest.mark.parametrize("status", ["succeeded", "sending"])
def test_a_dispatch_that_cannot_be_retried_has_no_button_and_a_post_says_why(
    support_client, status
):
    dispatch = DispatchFactory(status=status)
    assert 'id="retry-now"' not in page(support_client, dispatch)

    response = support_client.post(f"/dispatches/{dispatch.pk}/retry/")

    [message] = get_messages(response.wsgi_request)
    assert str(message) == (f"Dispatch {dispatch.pk} was not retried: it is being sent right "
                            "now or has already succeeded.")
    assert not Attempt.objects.filter(dispatch=dispatch).exists()


def test_the_appointments_action_uris_are_links_with_their_descriptions(support_client):
    dispatch = DispatchFactory(event__appointment__job_no="J 1/2")
    ActionUri.objects.create(source_app="BCPROD", url_type="task", description="Open the task",
                             template="https://bc.example.test/task?job=#JOBNO#")
    ActionUri.objects.create(source_app="BCPROD", url_type="map", description="Show on map",
                             template="https://maps.example.test/route?job=#JOBNO#",
                             request_type="POST")
    uris = section(page(support_client, dispatch), "action-uris")

    assert '<a href="https://bc.example.test/task?job=J%201%2F2"' in uris
    assert "Open the task</a>" in uris
    # POST: the admin's page that sends the form (docs/ACTION_URIS.md), for this change
    post = ActionUri.objects.get(request_type="POST")
    assert (f'<a href="/admin/connectors/actionuri/{post.pk}/open/{dispatch.appointment_id}/'
            '?action=create"') in uris
    assert "Show on map</a>" in uris


def rendered(uri: str, **extra) -> RenderedActionUri:
    values = {"url_type": "map", "url_type_label": "Map", "description": "x", "uri": uri,
              "request_type": "GET", "is_default": False}
    values.update(extra)
    return RenderedActionUri(**values)


def test_a_post_action_uri_without_its_admin_page_is_sent_from_here():
    shown = present._action_uri(rendered("https://maps.example.test/route", description="Map",
                                         request_type="POST", form_fields={"job": "J 1/2"}))
    assert shown.method == "POST" and not shown.open_url
    assert shown.form_fields == (("job", "J 1/2"),)


def test_without_action_uris_the_section_says_none_is_set_up(support_client):
    text = page(support_client, DispatchFactory())
    assert "No action URI is set up for source app BCPROD / SERVICE." in text


def test_only_http_action_uris_become_links():
    unsafe = present._action_uri(rendered("javascript:alert(1)"))
    safe = present._action_uri(rendered("https://a.test/"))
    assert not unsafe.linkable and safe.linkable


def test_the_detail_query_count_does_not_grow_with_attempts_or_siblings(
    support_client, django_assert_max_num_queries
):
    dispatch = DispatchFactory(status="failed")
    for _ in range(20):
        AttemptFactory(dispatch=dispatch)
    for _ in range(10):
        DispatchFactory(event=dispatch.event, connector=ConnectorFactory())
    support_client.get(f"/dispatches/{dispatch.pk}/")

    # session, user, 2 × permissions, dispatch (+event, client, appointment, connector),
    # attempts, siblings, action URIs
    with django_assert_max_num_queries(8):
        support_client.get(f"/dispatches/{dispatch.pk}/")
