"""connectors.rows: UPDATEs giving each row its own values (instead of Django's bulk_update)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connectors.models import Appointment
from connectors.rows import update_rows

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
FIELDS = ["appointment_id", "job_no", "data", "state_at", "deleted", "updated_at"]


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


def test_each_row_gets_its_own_values_of_every_field():
    rows = appointments(5)
    untouched = appointments(1)[0]
    wanted = change(rows)
    with CaptureQueriesContext(connection) as queries:
        update_rows(rows, FIELDS)
    assert len(queries) == 1
    assert stored(wanted) == wanted
    untouched.refresh_from_db()
    assert untouched.data == {"subject": "old"} and untouched.state_at == T0


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
