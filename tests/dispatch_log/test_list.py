"""/dispatches/: filters, the search across business keys, the time range, counts per status,
pagination, and a query count that does not grow with the rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from connectors.intake import IncomingEvent, events_accept
from connectors.models import AppointmentResource, Dispatch
from tests.connectors.backoffices import samples
from tests.connectors.pipeline_factories import (
    AppointmentFactory,
    ConnectorFactory,
    DispatchFactory,
    EventFactory,
    backdate,
)

pytestmark = pytest.mark.django_db

ROW = re.compile(r'<tr data-dispatch="(\d+)">')


def listed(client, query: str = "") -> list[int]:
    response = client.get(f"/dispatches/{query}")
    assert response.status_code == 200, response.content.decode()
    return [int(pk) for pk in ROW.findall(response.content.decode())]


def dispatch_for(**appointment) -> Dispatch:
    resources = appointment.pop("resources", ["R1"])
    event_id = appointment.pop("event_id", None)
    found = AppointmentFactory(**appointment)
    for no in resources:
        AppointmentResource.objects.create(appointment=found, resource_no=no)
    event = EventFactory(appointment=found, **({"event_id": event_id} if event_id else {}))
    return DispatchFactory(event=event)


def test_it_lists_newest_first_with_what_a_row_needs(support_client):
    old = DispatchFactory(status="succeeded")
    backdate(old, days=2)
    new = DispatchFactory(
        status="retrying", last_error="The back office answered 503.",
        connector__name="BC prod", event__appointment__job_no="J-77",
        event__appointment__task_no="T-5", event__appointment__appointment_no="A-9",
    )
    response = support_client.get("/dispatches/")
    text = response.content.decode()

    assert listed(support_client) == [new.pk, old.pk]
    row = text[text.index(f'data-dispatch="{new.pk}"'):text.index(f'data-dispatch="{old.pk}"')]
    for shown in ("Retrying", "BC prod", "BCPROD", "A-9", "J-77", "T-5",
                  "The back office answered 503.", "next:", f"/dispatches/{new.pk}/"):
        assert shown in row
    assert 'dc-status dc-unknown' in row


def test_it_filters_by_status_connector_and_source_app(support_client):
    failed = DispatchFactory(status="failed")
    DispatchFactory(status="succeeded")
    other = ConnectorFactory(name="Other app", source_app="OTHER")
    elsewhere = DispatchFactory(status="failed", connector=other)

    assert set(listed(support_client, "?status=failed")) == {failed.pk, elsewhere.pk}
    assert listed(support_client, f"?connector={other.pk}") == [elsewhere.pk]
    assert listed(support_client, "?source_app=OTHER") == [elsewhere.pk]
    assert listed(support_client, "?source_app=BCPROD&status=failed") == [failed.pk]


@pytest.mark.parametrize("key", ["guid", "appointment_no", "job_no", "task_no", "event_id",
                                 "resource_no", "dispatch uid", "message id"])
def test_the_search_finds_a_dispatch_by_each_business_key(support_client, key):
    wanted = dispatch_for(appointment_no="A-4711", job_no="J-4711", task_no="T-4711",
                          resources=["R-4711", "R-ANN"], event_id="ev-4711")
    dispatch_for()  # another appointment with other keys
    values = {
        "guid": str(wanted.appointment.guid), "appointment_no": "A-4711", "job_no": "J-4711",
        "task_no": "T-4711", "event_id": "ev-4711", "resource_no": "R-4711",
        "dispatch uid": str(wanted.uid), "message id": wanted.message_id,
    }
    assert listed(support_client, f"?q={values[key]}") == [wanted.pk]


def test_the_search_is_exact_but_tries_upper_case(support_client):
    wanted = dispatch_for(job_no="J-ABC")
    assert listed(support_client, "?q=j-abc") == [wanted.pk]
    assert listed(support_client, "?q=J-AB") == []
    assert listed(support_client, "?q=%20J-ABC%20") == [wanted.pk]  # spaces around are trimmed


def test_the_search_shows_every_dispatch_of_the_appointment(support_client):
    first = dispatch_for(job_no="J-9")
    second = DispatchFactory(event=EventFactory(appointment=first.appointment))
    assert listed(support_client, "?q=J-9") == [second.pk, first.pk]


def test_intake_makes_the_resource_nos_searchable_even_after_they_change(support_client):
    ConnectorFactory()
    post = [IncomingEvent(event_id="e1", action="create", occurred_at=timezone.now(),
                          appointment=samples.appointment())]
    [created] = events_accept(client=None, events=post)
    moved = samples.appointment(resources=[{"resource_no": "R-CAROL"}])
    [updated] = events_accept(client=None, events=[
        IncomingEvent(event_id="e2", action="update", occurred_at=timezone.now(),
                      appointment=moved)
    ])

    both = {*created.dispatch_ids, *updated.dispatch_ids}
    assert set(listed(support_client, "?q=R-CAROL")) == both
    # R-ANN is no longer on the appointment, but it was: its dispatches still come up.
    assert set(listed(support_client, "?q=R-ANN")) == both
    assert set(AppointmentResource.objects.values_list("resource_no", flat=True)) == {
        "R-ANN", "R-BOB", "R-CAROL"
    }


def test_the_time_range_is_inclusive_of_the_day_or_minute_given(support_client):
    inside = DispatchFactory()
    Dispatch.objects.filter(pk=inside.pk).update(
        created_at=datetime(2026, 3, 10, 9, 30, 40, tzinfo=UTC)
    )
    before = DispatchFactory()
    Dispatch.objects.filter(pk=before.pk).update(created_at=datetime(2026, 3, 9, 23, 59,
                                                                     tzinfo=UTC))

    assert listed(support_client, "?created_from=2026-03-10&created_to=2026-03-10") == [
        inside.pk
    ]
    assert listed(support_client, "?created_from=2026-03-10+09:30&created_to=2026-03-10+09:30") \
        == [inside.pk]
    assert listed(support_client, "?created_from=2026-03-10T09:31") == []
    assert listed(support_client, "?created_to=2026-03-10T09:29") == [before.pk]
    assert listed(support_client, "?created_from=2026-03-10+09:30:40") == [inside.pk]
    assert listed(support_client, "?created_to=2026-03-09") == [before.pk]


@pytest.mark.parametrize(("query", "message"), [
    ("?created_from=yesterday", "From: Enter a date, or a date and time (e.g. 2026-11-21 or "
                                "2026-11-21 09:30)."),
    ("?created_to=2026-13-01", "To: Enter a date, or a date and time"),
    ("?created_from=2026-03-11&created_to=2026-03-10", "To: “To” must be later than “From”."),
    ("?created_to=9999-12-31", "To: Enter a date, or a date and time"),
    ("?status=lost", "Status: Select a valid choice."),
    ("?connector=4242", "Connector: That connector does not exist (any more)."),
])
def test_bad_filters_show_a_clear_error_and_no_rows(support_client, query, message):
    DispatchFactory()
    response = support_client.get(f"/dispatches/{query}")
    text = response.content.decode()
    assert response.status_code == 400
    assert "Nothing is listed: fix the filters first." in text
    assert message in text.replace("&#x27;", "'").replace("&quot;", '"')
    assert not ROW.findall(text)


def counts(client, query: str = "") -> dict[str, str]:
    text = client.get(f"/dispatches/{query}").content.decode()
    return dict(re.findall(r'data-status="(\w+)"\s+class="[^"]*">[^:]+: (\d+)<', text))


def test_counts_per_status_follow_every_filter_but_the_status(support_client):
    for status in ("failed", "failed", "succeeded", "pending"):
        DispatchFactory(status=status)
    DispatchFactory(status="failed", connector=ConnectorFactory(source_app="OTHER"))

    everything = counts(support_client)
    assert everything == {"pending": "1", "sending": "0", "retrying": "0", "succeeded": "1",
                          "failed": "3", "cancelled": "0"}
    assert counts(support_client, "?status=failed") == everything  # the status filter aside
    assert counts(support_client, "?source_app=BCPROD")["failed"] == "2"


def test_it_pages_by_50_and_keeps_the_filters_in_the_page_links(support_client):
    connector = ConnectorFactory()
    made = [DispatchFactory(connector=connector, status="failed") for _ in range(53)]
    first = support_client.get("/dispatches/?status=failed").content.decode()

    assert len(ROW.findall(first)) == 50
    assert "53 dispatches" in first
    assert 'href="?status=failed&amp;page=2"' in first
    second = listed(support_client, "?status=failed&page=2")
    assert second == [d.pk for d in made[:3]][::-1]
    assert listed(support_client, "?status=failed&page=99") == second  # the last page
    assert listed(support_client, "?status=failed&page=x")[0] == made[-1].pk  # the first


def test_an_empty_result_says_so(support_client):
    response = support_client.get("/dispatches/?q=nothing-like-this")
    assert b"No dispatches match these filters." in response.content


def test_the_list_query_count_does_not_grow_with_the_rows(
    support_client, django_assert_num_queries, django_assert_max_num_queries
):
    connectors = [ConnectorFactory() for _ in range(3)]
    for index in range(60):
        DispatchFactory(connector=connectors[index % 3], status="failed", last_error="boom")
    support_client.get("/dispatches/")  # warm: session, user and permission caches

    # session, user, 2 × permissions, connectors and source apps (filters), counts, rows,
    # the page's connectors (redactors)
    with django_assert_num_queries(9):
        response = support_client.get("/dispatches/?q=&status=failed")
    assert len(ROW.findall(response.content.decode())) == 50
    with django_assert_max_num_queries(10):
        support_client.get("/dispatches/?q=J-1&source_app=BCPROD&created_from=2026-01-01")
