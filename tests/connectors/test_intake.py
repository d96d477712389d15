"""Accepting a request's events together (connectors/intake.py): the same outcome as one by
one — order, stale events, duplicates, a race for the same event id — in a few statements."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from connectors.intake import IncomingEvent, events_accept
from connectors.models import ApiClient, Appointment, AppointmentEvent, Connector, Dispatch
from connectors.rows import COPY_FROM
from connectors.services import api_client_create, connector_save

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def data(guid: str, subject: str = "S", **extra: object) -> dict[str, object]:
    return {"guid": guid, "source_app": "BCPROD", "source_type": "", "subject": subject,
            "start": "2026-11-25T08:00:00Z", "end": "2026-11-25T10:00:00Z",
            "resources": [{"resource_no": "R1", "email": ""}], **extra}


def event(guid: str, action: str, minutes: int, subject: str = "S",
          event_id: str | None = None) -> IncomingEvent:
    return IncomingEvent(event_id or str(uuid.uuid4()), action, T0 + timedelta(minutes=minutes),
                         data(guid, subject))


@pytest.fixture
def hooks(db):
    return [connector_save(Connector(name=f"hook {n}", type="webhook", api_type="rest",
                                     auth_type="none", uri="http://127.0.0.1:9/x",
                                     source_app="BCPROD")) for n in range(2)]


@pytest.mark.django_db
def test_events_of_one_appointment_in_one_request_apply_in_order(hooks):
    guid, other = str(uuid.uuid4()), str(uuid.uuid4())
    outcomes = events_accept(client=None, events=[
        event(guid, "create", 0, "first"),
        event(other, "create", 0, "other"),
        event(guid, "update", 10, "newest"),
        event(guid, "update", 5, "stale"),  # older than the state the previous event set
        event(guid, "update", 10, "same time"),  # not older: applies
    ])
    assert [(o.status, o.stale, o.dispatches) for o in outcomes] == [
        ("accepted", False, 2), ("accepted", False, 2), ("accepted", False, 2),
        ("accepted", True, 0), ("accepted", False, 2)]
    appointment = Appointment.objects.get(guid=guid)
    assert appointment.data["subject"] == "same time"
    assert appointment.state_at == T0 + timedelta(minutes=10)
    ids = [pk for o in outcomes for pk in o.dispatch_ids]
    assert ids == sorted(ids) and len(ids) == Dispatch.objects.count() == 8
    chain = list(Dispatch.objects.filter(appointment=appointment, connector=hooks[0])
                 .order_by("pk").values_list("payload__subject", flat=True))
    assert chain == ["first", "newest", "same time"]
    stored = AppointmentEvent.objects.filter(appointment=appointment).order_by("pk")
    assert [(e.stale, e.dispatch_count) for e in stored] == [
        (False, 2), (False, 2), (True, 0), (False, 2)]


@pytest.mark.django_db
def test_a_request_costs_the_same_few_statements_for_one_or_many_events(hooks):
    def statements(count: int) -> int:
        events = [event(str(uuid.uuid4()), "create", 0) for _ in range(count)]
        with CaptureQueriesContext(connection) as queries:
            events_accept(client=None, events=events)
        return len(queries)

    statements(1)  # the first request also reads what the process caches afterwards
    one = statements(1)
    assert statements(10) == one
    # 50 events only add the extra INSERTs the database's parameter limit splits bulk inserts
    # into (SQLite: 999 per statement), none per event.
    assert statements(50) <= one + 6


@pytest.mark.django_db
def test_updates_cost_the_same_few_statements_for_one_or_many_events(hooks):
    def statements(count: int) -> int:
        guids = [str(uuid.uuid4()) for _ in range(count)]
        events_accept(client=None, events=[event(guid, "create", 0) for guid in guids])
        updates = [event(guid, "update", 1, f"new {n}") for n, guid in enumerate(guids)]
        with CaptureQueriesContext(connection) as queries:
            events_accept(client=None, events=updates)
        subjects = dict(Appointment.objects.filter(guid__in=guids)
                        .values_list("guid", "data__subject"))
        assert subjects == {uuid.UUID(guid): f"new {n}" for n, guid in enumerate(guids)}
        return len(queries)

    one = statements(1)
    assert statements(10) == one  # the appointments' new states in one UPDATE


@pytest.mark.django_db
def test_only_a_stored_appointment_is_looked_up_for_outlook_events(hooks):
    """An appointment created by the request cannot have events in Outlook yet."""
    guid = str(uuid.uuid4())

    def link_reads(action: str, minutes: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            events_accept(client=None, events=[event(guid, action, minutes)])
        return sum("exchange_sync_eventlink" in q["sql"] for q in queries)

    assert link_reads("create", 0) == 0
    assert link_reads("update", 5) == 1


@pytest.mark.django_db
def test_json_documents_are_bulk_inserted_as_values_not_unnest(hooks):
    """On PostgreSQL, Django would bulk-insert through UNNEST of array literals, which psycopg
    quotes with a Python regex per escaped character (BulkJSONField)."""
    events = [event(str(uuid.uuid4()), "create", 0, subject='"quoted" ' * 50) for _ in range(3)]
    with CaptureQueriesContext(connection) as queries:
        events_accept(client=None, events=events)
    inserts = [q["sql"] for q in queries if q["sql"].startswith("INSERT")]
    assert len(inserts) >= 3 and not [sql for sql in inserts if "UNNEST" in sql.upper()
                                      and "payload" in sql]
    assert Dispatch.objects.filter(payload__subject='"quoted" ' * 50).count() == 6


@pytest.mark.django_db
def test_a_repeated_event_id_in_one_request_is_a_duplicate(hooks):
    api_client_create(name="B", source_apps=["BCPROD"])
    client = ApiClient.objects.get()
    guid = str(uuid.uuid4())
    outcomes = events_accept(client=client, events=[
        event(guid, "create", 0, event_id="e-1"), event(guid, "update", 1, event_id="e-1")])
    assert [o.status for o in outcomes] == ["accepted", "duplicate"]
    assert AppointmentEvent.objects.count() == 1


@pytest.mark.django_db
def test_no_events_store_nothing_and_send_no_statement(hooks):
    client, _ = api_client_create(name="B", source_apps=["BCPROD"])
    with CaptureQueriesContext(connection) as queries:
        assert events_accept(client=client, events=[]) == []
    assert not [q for q in queries if not q["sql"].startswith(("BEGIN", "COMMIT", "SAVEPOINT",
                                                                 "RELEASE"))]


@pytest.mark.django_db
def test_a_connector_whose_secret_cannot_be_read_does_not_stop_intake(hooks):
    with connection.cursor() as cursor:  # encrypted with a key that is no longer configured
        cursor.execute("UPDATE connectors_connector SET password = %s WHERE id = %s",
                       ["gAAAAABnotavalidtokenforanyconfiguredkey", hooks[0].pk])
    [outcome] = events_accept(client=None, events=[event(str(uuid.uuid4()), "create", 0)])
    assert outcome.dispatches == 2


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="two connections writing at once: PostgreSQL only (the SQLite test database is one "
    "shared in-memory database; CI's second pass runs it)",
)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("count", [1, COPY_FROM + 5])  # one INSERT; COPY
def test_two_requests_racing_with_the_same_event_id_store_it_once(hooks, count):
    api_client_create(name="B", source_apps=["BCPROD"])
    client = ApiClient.objects.get()
    guids = [str(uuid.uuid4()) for _ in range(count)]
    barrier = threading.Barrier(2)
    results: list[str] = []

    def post() -> None:
        try:
            barrier.wait(timeout=10)
            outcomes = events_accept(client=client, events=[
                event(guid, "create", 0, event_id=f"same-{n}") for n, guid in enumerate(guids)])
            results.extend(outcome.status for outcome in outcomes)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == ["accepted"] * count + ["duplicate"] * count
    assert AppointmentEvent.objects.count() == count
    assert Dispatch.objects.count() == 2 * count
