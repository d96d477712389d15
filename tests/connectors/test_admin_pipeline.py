"""Admin of the write-back pipeline: appointments, events and dispatches are readable, not
editable; failed dispatches can be retried (with the permission); quarantined connectors are
shown with a banner and can be resumed."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connectors.models import Appointment, AppointmentEvent, Connector, Dispatch
from tests.connectors.pipeline_factories import (
    AppointmentFactory,
    AttemptFactory,
    ConnectorFactory,
    DispatchFactory,
    EventFactory,
)

pytestmark = pytest.mark.django_db

APPOINTMENTS = reverse("admin:connectors_appointment_changelist")
EVENTS = reverse("admin:connectors_appointmentevent_changelist")
DISPATCHES = reverse("admin:connectors_dispatch_changelist")
CONNECTORS = reverse("admin:connectors_connector_changelist")


def url(name: str, *args: Any) -> str:
    return reverse(f"admin:connectors_{name}", args=args)


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def listed(response: Any) -> list[Any]:
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def staff_client(*codenames: str) -> Client:
    user = User.objects.create_user("support", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


# --- Appointments ----------------------------------------------------------------------------


def test_the_appointment_changelist_renders_with_its_filters_and_a_search(admin_client):
    kept = AppointmentFactory(appointment_no="SO-55", job_no="PRJ-77", task_no="TSK-5")
    AppointmentFactory(source_app="NAVPROD", deleted=True)

    assert len(listed(admin_client.get(APPOINTMENTS))) == 2
    assert listed(admin_client.get(APPOINTMENTS, {"source_app": "BCPROD", "deleted__exact": "0"})) \
        == [kept]
    for term in (str(kept.guid), "SO-55", "PRJ-77", "TSK-5"):
        assert listed(admin_client.get(APPOINTMENTS, {"q": term})) == [kept], term


def test_the_appointment_page_shows_its_state_and_links_to_its_history(admin_client):
    dispatch = DispatchFactory()
    appointment = dispatch.appointment

    response = admin_client.get(url("appointment_change", appointment.pk))

    content = response.content.decode()
    assert response.status_code == 200
    assert "Boiler service" in content
    assert f"?appointment__id__exact={appointment.pk}" in content
    assert "1 event(s)" in content and "1 dispatch(es)" in content
    assert 'name="_save"' not in content
    linked = admin_client.get(DISPATCHES, {"appointment__id__exact": appointment.pk})
    assert listed(linked) == [dispatch]


# --- Events ----------------------------------------------------------------------------------


def test_the_event_changelist_renders_with_its_filters_and_a_search(admin_client):
    from connectors import services

    client, _ = services.api_client_create(name="BC prod", source_apps=["BCPROD"])
    wanted = EventFactory(event_id="bc-4711", action="update", client=client,
                          appointment__job_no="J-99")
    EventFactory(action="create", stale=True, source="exchange")

    everything = listed(admin_client.get(EVENTS))
    filtered = listed(admin_client.get(EVENTS, {
        "action__exact": "update", "stale__exact": "0", "source": "api",
        "client__id__exact": client.pk,
    }))

    assert len(everything) == 2
    assert filtered == [wanted]
    for term in ("bc-4711", str(wanted.appointment.guid), "J-99"):
        assert listed(admin_client.get(EVENTS, {"q": term})) == [wanted], term
    content = admin_client.get(EVENTS).content.decode()
    assert "BCPROD" in content  # the source app column, via the appointment


def test_the_event_page_shows_its_payload_and_links_to_its_dispatches(admin_client):
    dispatch = DispatchFactory()

    response = admin_client.get(url("appointmentevent_change", dispatch.event.pk))

    content = response.content.decode()
    assert response.status_code == 200
    assert '<pre class="dc-json">' in content and "Boiler service" in content
    assert f"?event__id__exact={dispatch.event.pk}" in content
    assert listed(admin_client.get(DISPATCHES, {"event__id__exact": dispatch.event.pk})) == [
        dispatch
    ]


# --- Dispatches ------------------------------------------------------------------------------


def test_the_dispatch_changelist_renders_with_every_filter(admin_client):
    nav = ConnectorFactory(name="NAV prod", source_app="NAVPROD")
    wanted = DispatchFactory(status="failed", connector=nav, event__action="delete",
                             last_error="The back office refused the record: 400 Bad Request.")
    DispatchFactory(status="failed")
    DispatchFactory(status="succeeded", connector=nav)

    response = admin_client.get(DISPATCHES, {
        "status__exact": "failed", "connector__id__exact": nav.pk, "action__exact": "delete",
        "connector__source_app": "NAVPROD",
    })

    assert listed(response) == [wanted]
    content = response.content.decode()
    assert '<span class="dc-status dc-fail">Failed</span>' in content
    assert "The back office refused the record" in content


def test_the_dispatch_changelist_finds_a_dispatch_by_each_search_field(admin_client):
    wanted = DispatchFactory(event__event_id="bc-4711",
                             event__appointment__appointment_no="A-555",
                             event__appointment__job_no="J-42",
                             event__appointment__task_no="T-9")
    DispatchFactory()
    appointment = wanted.appointment

    for term in (str(wanted.uid), wanted.uid.hex[:8], "bc-4711", str(appointment.guid),
                 "A-555", "J-42", "T-9"):
        assert listed(admin_client.get(DISPATCHES, {"q": term})) == [wanted], term


def test_the_dispatch_page_shows_the_payload_and_every_attempt(admin_client):
    connector = ConnectorFactory(auth_type="basic", login="svc", password="pa55-word-9876")
    dispatch = DispatchFactory(connector=connector, status="retrying", attempts=2,
                               last_error="503 Service Unavailable")
    AttemptFactory(dispatch=dispatch, response_excerpt="<error>Service & unavailable</error>")
    AttemptFactory(dispatch=dispatch, outcome="requested", status_code=None, error_class="",
                   response_excerpt="", user="ann", message="Retry requested by ann.")

    response = admin_client.get(url("dispatch_change", dispatch.pk))

    content = response.content.decode()
    assert response.status_code == 200
    assert "Boiler service" in content  # the payload
    table = content[content.index('id="attempts"'):]
    assert table.count('<tr class="dc-attempt ') == 2
    assert '<pre class="dc-excerpt">&lt;error&gt;Service &amp; unavailable&lt;/error&gt;</pre>' \
        in table
    for shown in ("Failed, will retry", "503", "HTTPStatusError", "120 ms",
                  "The back office is down", "Retry requested by ann."):
        assert shown in table
    assert "pa55-word-9876" not in content
    assert 'name="_save"' not in content


def test_a_dispatch_without_attempts_says_so(admin_client):
    dispatch = DispatchFactory()

    content = admin_client.get(url("dispatch_change", dispatch.pk)).content.decode()

    assert "No attempt yet." in content


@pytest.mark.parametrize(
    ("name", "make"),
    [("appointment", AppointmentFactory), ("appointmentevent", EventFactory),
     ("dispatch", DispatchFactory)],
)
def test_the_pipeline_is_read_only_even_for_a_superuser(admin_client, name, make):
    obj = make()
    model = type(obj)
    count = model.objects.count()

    assert admin_client.get(url(f"{name}_add")).status_code == 403
    assert admin_client.post(url(f"{name}_change", obj.pk), {}).status_code == 403
    assert admin_client.get(url(f"{name}_delete", obj.pk)).status_code == 403
    assert admin_client.post(url(f"{name}_delete", obj.pk), {"post": "yes"}).status_code == 403
    changelist = admin_client.get(url(f"{name}_changelist"))
    assert "delete_selected" not in changelist.content.decode()
    assert model.objects.count() == count


def test_a_user_with_the_view_permission_reads_the_log(client):
    dispatch = DispatchFactory()
    reader = staff_client("view_dispatch", "view_appointmentevent", "view_appointment")

    assert listed(reader.get(DISPATCHES)) == [dispatch]
    assert reader.get(url("dispatch_change", dispatch.pk)).status_code == 200
    assert reader.get(url("appointment_change", dispatch.appointment.pk)).status_code == 200


def test_the_attempt_model_has_no_admin_of_its_own(admin_client):
    assert admin_client.get("/admin/connectors/attempt/").status_code == 404


def test_the_dispatch_changelist_makes_no_query_per_row(admin_client,
                                                        django_assert_max_num_queries):
    for number in range(30):
        dispatch = DispatchFactory(status="failed", last_error=f"error {number}",
                                   connector__name=f"Connector {number}")
        AttemptFactory(dispatch=dispatch)
    admin_client.get(DISPATCHES)  # warm up (session, content types)

    with django_assert_max_num_queries(12):
        response = admin_client.get(DISPATCHES)

    assert len(listed(response)) == 30


# --- Retry -----------------------------------------------------------------------------------


def retry(client: Client, *dispatches: Dispatch) -> Any:
    return client.post(
        DISPATCHES,
        {"action": "retry_dispatches", "_selected_action": [d.pk for d in dispatches]},
        follow=True,
    )


def test_retrying_without_the_permission_is_refused_and_changes_nothing():
    failed = DispatchFactory(status="failed", attempts=8)
    support = staff_client("view_dispatch")

    response = retry(support, failed)

    assert messages_of(response) == [
        "Nothing was retried: retrying dispatches needs the permission "
        "“Can retry a dispatch” (connectors.retry_dispatch)."
    ]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("failed", 8)
    assert not failed.attempt_log.exists()


def test_retrying_with_the_permission_makes_failed_dispatches_due_now():
    failed = DispatchFactory(status="failed", attempts=8,
                             next_attempt_at=timezone.now() - timedelta(days=3))
    cancelled = DispatchFactory(status="cancelled")
    delivered = DispatchFactory(status="succeeded")
    support = staff_client("view_dispatch", "retry_dispatch")

    response = retry(support, failed, cancelled, delivered)

    assert messages_of(response) == [
        "Retrying 2 dispatch(es) now; skipped 1 that were being sent or had succeeded."
    ]
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("pending", 0)
    assert failed.next_attempt_at is not None
    assert failed.next_attempt_at >= timezone.now() - timedelta(minutes=1)
    [logged] = failed.attempt_log.all()
    assert logged.outcome == "requested" and logged.user == "support"
    cancelled.refresh_from_db()
    assert cancelled.status == "pending"
    delivered.refresh_from_db()
    assert delivered.status == "succeeded"


def test_retrying_only_delivered_dispatches_warns_that_nothing_was_retried(admin_client):
    delivered = DispatchFactory(status="succeeded")

    response = retry(admin_client, delivered)

    assert messages_of(response) == [
        "Retrying 0 dispatch(es) now; skipped 1 that were being sent or had succeeded."
    ]


def test_the_retry_button_shows_only_for_a_failed_dispatch_and_with_the_permission():
    failed = DispatchFactory(status="failed")
    delivered = DispatchFactory(status="succeeded")
    allowed = staff_client("view_dispatch", "retry_dispatch")

    assert 'id="retry-dispatch"' in allowed.get(url("dispatch_change", failed.pk)).content.decode()
    assert 'id="retry-dispatch"' not in allowed.get(
        url("dispatch_change", delivered.pk)).content.decode()
    User.objects.get(username="support").user_permissions.remove(
        Permission.objects.get(codename="retry_dispatch"))
    assert 'id="retry-dispatch"' not in allowed.get(
        url("dispatch_change", failed.pk)).content.decode()


def test_the_retry_button_posts_the_retry_action(admin_client):
    failed = DispatchFactory(status="failed")
    page = admin_client.get(url("dispatch_change", failed.pk)).content.decode()
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*>(.*?)id="retry-dispatch"',
                     page, re.S)
    assert form, page
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group(2)))

    response = admin_client.post(form.group(1), fields, follow=True)

    assert messages_of(response) == ["Retrying 1 dispatch(es) now."]
    failed.refresh_from_db()
    assert failed.status == "pending"


# --- Quarantine ------------------------------------------------------------------------------


def quarantine(connector: Connector, *, days: int = 6, reason: str = "") -> Connector:
    now = timezone.now()
    Connector.objects.filter(pk=connector.pk).update(
        failing_since=now - timedelta(days=days), quarantined_at=now - timedelta(hours=2),
        quarantine_reason=reason or f"Every delivery failed for {days} day(s).",
    )
    connector.refresh_from_db()
    return connector


def test_the_connector_list_has_no_banner_when_nothing_is_quarantined(admin_client):
    ConnectorFactory()

    content = admin_client.get(CONNECTORS).content.decode()

    assert 'id="quarantine-banner"' not in content
    assert ">quarantined<" not in content


def test_the_connector_list_shows_a_banner_naming_each_quarantined_connector(admin_client):
    bad = quarantine(ConnectorFactory(name="BC prod"),
                     reason="Every delivery failed for 6 day(s) (40 failed attempts).")
    DispatchFactory(connector=bad, status="pending")
    DispatchFactory(connector=bad, status="retrying")
    DispatchFactory(connector=bad, status="failed")
    ConnectorFactory(name="Healthy")

    content = admin_client.get(CONNECTORS).content.decode()

    banner = content[content.index('id="quarantine-banner"'):content.index('id="changelist"')]
    assert "1 connector(s) quarantined" in banner
    assert f'href="{url("connector_change", bad.pk)}">BC prod</a>' in banner
    assert "2 dispatch(es) held" in banner
    assert "Every delivery failed for 6 day(s) (40 failed attempts)." in banner
    assert f"since {timezone.localtime(bad.quarantined_at):%Y-%m-%d %H:%M}" in banner
    assert "Healthy" not in banner
    status = re.search(r'<td class="field-status">(.*?)</td>',
                       content[content.index(">BC prod</a></th>"):], re.S)
    assert status and "dc-quarantined" in status.group(1)
    assert 'title="Every delivery failed for 6 day(s) (40 failed attempts)."' in status.group(1)


def test_a_quarantined_connector_form_shows_the_banner_with_a_resume_button(admin_client):
    bad = quarantine(ConnectorFactory(name="BC prod"), reason="Every delivery failed.")
    DispatchFactory(connector=bad, status="pending")
    healthy = ConnectorFactory(name="Healthy")

    content = admin_client.get(url("connector_change", bad.pk)).content.decode()

    assert 'id="quarantine-banner"' in content
    assert "This connector is <strong>quarantined</strong>" in content
    assert "Every delivery failed." in content
    assert "1 dispatch(es) are held until it is resumed." in content
    assert 'id="resume-connector"' in content
    assert 'id="quarantine-banner"' not in admin_client.get(
        url("connector_change", healthy.pk)).content.decode()


def test_the_resume_button_lifts_the_quarantine(admin_client):
    bad = quarantine(ConnectorFactory(name="BC prod"))
    held = DispatchFactory(connector=bad, status="pending",
                           next_attempt_at=timezone.now() + timedelta(hours=5))
    page = admin_client.get(url("connector_change", bad.pk)).content.decode()
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*>(.*?)id="resume-connector"',
                     page, re.S)
    assert form, page
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group(2)))

    response = admin_client.post(form.group(1), fields, follow=True)

    assert messages_of(response) == [
        "Resumed 1 quarantined connector(s); 1 held dispatch(es) are due now."
    ]
    bad.refresh_from_db()
    assert (bad.quarantined_at, bad.quarantine_reason, bad.failing_since) == (None, "", None)
    held.refresh_from_db()
    assert held.next_attempt_at is not None and held.next_attempt_at <= timezone.now()


def test_the_resume_action_resumes_the_quarantined_ones_and_counts_the_others(admin_client):
    first = quarantine(ConnectorFactory(name="A"))
    second = quarantine(ConnectorFactory(name="B"))
    healthy = ConnectorFactory(name="C")
    for connector in (first, first, second):
        DispatchFactory(connector=connector, status="retrying")

    response = admin_client.post(
        CONNECTORS,
        {"action": "resume_quarantined_connectors",
         "_selected_action": [first.pk, second.pk, healthy.pk]},
        follow=True,
    )

    assert messages_of(response) == [
        "Resumed 2 quarantined connector(s); 3 held dispatch(es) are due now. "
        "1 selected connector(s) were not quarantined."
    ]
    assert not Connector.objects.filter(quarantined_at__isnull=False).exists()
    assert 'id="quarantine-banner"' not in response.content.decode()


def test_resuming_needs_the_change_permission():
    bad = quarantine(ConnectorFactory(name="BC prod"))
    reader = staff_client("view_connector")

    response = reader.post(
        CONNECTORS, {"action": "resume_quarantined_connectors", "_selected_action": [bad.pk]},
        follow=True,
    )

    assert messages_of(response) == []  # without change permission the list has no actions
    assert "resume_quarantined_connectors" not in response.content.decode()
    bad.refresh_from_db()
    assert bad.quarantined_at is not None
    page = reader.get(url("connector_change", bad.pk)).content.decode()
    assert 'id="quarantine-banner"' in page and 'id="resume-connector"' not in page


def test_the_dispatch_factory_builds_one_consistent_graph():
    dispatch = DispatchFactory()
    assert (Appointment.objects.count(), AppointmentEvent.objects.count()) == (1, 1)
    assert dispatch.appointment == dispatch.event.appointment
