"""connectors.rows: UPDATEs giving each row its own values (instead of Django's bulk_update),
and INSERTs of many rows (COPY on PostgreSQL, bulk_create elsewhere)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from connectors.models import Appointment, AppointmentEvent
from connectors.rows import COPY_FROM, JsonTexts, insert_rows, update_rows

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
FIELDS = ["appointment_id", "job_no", "data", "state_at", "deleted", "updated_at"]


def copies(count: int) -> bool:
    """Whether rows.py takes the COPY path for this many rows here."""
    return connection.vendor == "postgresql" and count >= COPY_FROM


def appointments(count: int) -> list[Appointment]:
    return [Appointment.objects.create(guid=uuid.uuid4(), source_app="BCPROD", state_at=T0,
                                       data={"subject": "old"}) for _ in range(count)]


def change(rows: list[Appointment]) -> dict[int, tuple]:
    for n, row in enumerate(rows):
        row.appointment_id = None if n % 2 else n
        row.job_no = f"J-{n} 'quoted' \\ ü"
        row.data = {"subject": f'"{n}" said \'hi\'', "nested": {"n": n, "none": None}}
        row.state_at = T0 + timedelta(minutes=n)
        row.deleted = n % 3 == 0
        row.updated_at = T0 + timedelta(hours=n)
    return {row.pk: tuple(getattr(row, f) for f in FIELDS) for row in rows}


def stored(ids) -> dict[int, tuple]:
    return {row.pk: tuple(getattr(row, f) for f in FIELDS)
            for row in Appointment.objects.filter(pk__in=ids)}


@pytest.mark.parametrize("count", [5, COPY_FROM + 5])  # PostgreSQL: CASE, then COPY
def test_each_row_gets_its_own_values_of_every_field(count):
    rows = appointments(count)
    untouched = appointments(1)[0]
    wanted = change(rows)
    with CaptureQueriesContext(connection) as queries:
        update_rows(rows, FIELDS)
    assert stored(wanted) == wanted
    assert any("rows_update_" in q["sql"] for q in queries) == copies(count)
    untouched.refresh_from_db()
    assert untouched.data == {"subject": "old"} and untouched.state_at == T0


def test_a_few_rows_are_one_statement():
    rows = appointments(5)
    wanted = change(rows)
    with CaptureQueriesContext(connection) as queries:
        update_rows(rows, FIELDS)
    assert len(queries) == 1
    assert stored(wanted) == wanted


def test_rows_are_split_by_the_databases_parameter_limit(monkeypatch):
    rows = appointments(7)
    wanted = change(rows)
    monkeypatch.setattr(type(connection.features), "max_query_params", 2 * len(FIELDS))
    with CaptureQueriesContext(connection) as queries:
        update_rows(rows, FIELDS)
    assert len(queries) == 4  # 2 + 2 + 2 + 1 rows
    assert stored(wanted) == wanted


def test_nothing_to_update_runs_no_statement():
    with CaptureQueriesContext(connection) as queries:
        update_rows([], FIELDS)
    assert len(queries) == 0


def new_appointments(count: int) -> list[Appointment]:
    return [Appointment(
        guid=uuid.uuid4(), source_app="BCPROD", state_at=T0 + timedelta(minutes=n),
        appointment_id=None if n % 2 else n, job_no=f"J-{n} 'quoted' \\ ü\ttab\nline",
        data={"subject": f'"{n}" said \'hi\' \\ ü', "nested": {"n": n, "none": None},
              "list": [1.5, True, None]},
        deleted=n % 3 == 0,
    ) for n in range(count)]


@pytest.mark.parametrize("count", [3, COPY_FROM + 5])
def test_inserted_rows_get_ascending_ids_and_read_back_as_given(count):
    rows = new_appointments(count)
    given = [(r.guid, r.appointment_id, r.job_no, r.data, r.state_at, r.deleted) for r in rows]
    with CaptureQueriesContext(connection) as queries:
        insert_rows(rows)
    assert any("nextval" in q["sql"] for q in queries) == copies(count)
    ids = [row.pk for row in rows]
    assert all(ids) and ids == sorted(ids) and len(set(ids)) == count
    assert all(not row._state.adding for row in rows)
    assert all(row.created_at is not None for row in rows)  # the fields' pre_save ran
    back = {a.pk: a for a in Appointment.objects.filter(pk__in=ids)}
    assert [(back[pk].guid, back[pk].appointment_id, back[pk].job_no, back[pk].data,
             back[pk].state_at, back[pk].deleted) for pk in ids] == given
    Appointment.objects.create(guid=uuid.uuid4(), source_app="BCPROD", state_at=T0)
    assert Appointment.objects.order_by("pk").last().pk > max(ids)  # the sequence moved on


def test_inserted_rows_take_foreign_keys_from_instances_saved_since():
    appointments = new_appointments(COPY_FROM)
    events = [AppointmentEvent(event_id=f"e{n}", action="create", occurred_at=T0,
                               received_at=T0, appointment=a, payload={"n": n})
              for n, a in enumerate(appointments)]  # built before the appointments have ids
    insert_rows(appointments)
    insert_rows(events)
    stored_events = AppointmentEvent.objects.filter(pk__in=[e.pk for e in events])
    assert {(e.event_id, e.appointment_id) for e in stored_events} == {
        (f"e{n}", a.pk) for n, a in enumerate(appointments)}


def test_inserting_nothing_runs_no_statement():
    with CaptureQueriesContext(connection) as queries:
        insert_rows([])
    assert len(queries) == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY's value preparation is "
                    "PostgreSQL's (CI's second pass runs it)")
def test_copy_prepares_every_value_as_django_would():
    from connectors.models import Dispatch
    from connectors.rows import _preparer

    [appointment] = new_appointments(1)
    appointment.appointment_id = None
    insert_rows([appointment])
    event = AppointmentEvent(event_id="e", action="update", occurred_at=T0, received_at=T0,
                             appointment=appointment, payload={"a": 1})
    insert_rows([event])
    dispatch = Dispatch(event=event, appointment=appointment, connector_id=None,
                        action="update", payload={"a": 1}, next_attempt_at=T0)
    for obj in (appointment, event, dispatch):
        for field in type(obj)._meta.concrete_fields:
            value = field.pre_save(obj, True)
            prepared = _preparer(field, connection)(value)
            expected = field.get_db_prep_save(value, connection)
            # The same text in COPY's format (Django wraps ints as psycopg's Int4/Int8, which
            # matter for binding parameters, not for COPY's text).
            assert str(prepared) == str(expected), field
            assert isinstance(prepared, type(expected)) or isinstance(expected, type(prepared))


def test_a_conflicting_row_raises_djangos_integrity_error_and_inserts_nothing():
    """What the intake's race handling catches (COPY's error is psycopg's own otherwise)."""
    appointments = new_appointments(COPY_FROM + 5)
    appointments[-1].guid = appointments[0].guid  # the GUID is unique
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(appointments)
    assert not Appointment.objects.exists()


def test_json_objects_shared_by_rows_are_stored_alike_in_each():
    appointments = new_appointments(COPY_FROM)
    payloads: list[object] = [a.data for a in appointments]  # the same objects, stored twice
    payloads[1] = ["a", {"list": True}]
    payloads[2] = "a JSON string"
    texts = JsonTexts()
    insert_rows(appointments, texts=texts)
    events = [AppointmentEvent(event_id=f"e{n}", action="create", occurred_at=T0,
                               received_at=T0, appointment=a, payload=payload)
              for n, (a, payload) in enumerate(zip(appointments, payloads, strict=True))]
    insert_rows(events, texts=texts)
    back = {e.event_id: (e.payload, e.appointment.data)
            for e in AppointmentEvent.objects.select_related("appointment")}
    assert back == {f"e{n}": (payloads[n], a.data) for n, a in enumerate(appointments)}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL's (CI's second "
                    "pass runs it)")
@pytest.mark.django_db(transaction=True)
def test_a_copy_the_server_refuses_raises_djangos_operational_error():
    """The API answers Django's OperationalError with 503; psycopg's own would be a 500."""
    import psycopg

    settings = connection.settings_dict
    other = psycopg.connect(host=settings["HOST"] or None, port=settings["PORT"] or None,
                            user=settings["USER"] or None, password=settings["PASSWORD"] or None,
                            dbname=settings["NAME"])
    try:
        other.execute("BEGIN")
        other.execute("LOCK TABLE connectors_appointment IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(OperationalError), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '100ms'")
            insert_rows(new_appointments(COPY_FROM))
    finally:
        other.close()
    assert not Appointment.objects.exists()
