"""/dispatches/export.csv: the filtered list as CSV, streamed, with documented columns."""

from __future__ import annotations

import csv
import io

import pytest

from connectors.dispatch_log import export
from connectors.dispatch_log.selectors import DispatchFilters
from tests.connectors.pipeline_factories import ConnectorFactory, DispatchFactory

pytestmark = pytest.mark.django_db

COLUMNS = [
    "id", "dispatch_uid", "created_at", "status", "action", "connector", "source_app",
    "appointment_guid", "appointment_no", "job_no", "task_no", "event_id", "attempts",
    "last_status_code", "last_error", "last_hint", "next_attempt_at", "delivered_at",
]


def exported(client, query: str = "") -> list[dict[str, str]]:
    response = client.get(f"/dispatches/export.csv{query}")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="dispatches.csv"'
    text = b"".join(response.streaming_content).decode()
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == COLUMNS
    return list(reader)


def test_it_exports_the_filtered_list_newest_first_with_every_column(support_client):
    DispatchFactory(status="succeeded")
    older = DispatchFactory(status="failed", last_status_code=400, last_error="Job unknown.",
                            last_hint="Fix the job.", connector__name="BC prod",
                            event__event_id="ev-1", event__appointment__job_no="J-1")
    newer = DispatchFactory(status="failed")

    rows = exported(support_client, "?status=failed")

    assert [int(row["id"]) for row in rows] == [newer.pk, older.pk]
    row = rows[1]
    assert row == {
        "id": str(older.pk), "dispatch_uid": str(older.uid),
        "created_at": older.created_at.isoformat(), "status": "failed", "action": "create",
        "connector": "BC prod", "source_app": "BCPROD",
        "appointment_guid": str(older.appointment.guid),
        "appointment_no": older.appointment.appointment_no, "job_no": "J-1", "task_no": "T-1",
        "event_id": "ev-1", "attempts": "0", "last_status_code": "400",
        "last_error": "Job unknown.", "last_hint": "Fix the job.",
        "next_attempt_at": older.next_attempt_at.isoformat(), "delivered_at": "",
    }


def test_the_export_link_on_the_list_carries_the_filters(support_client):
    text = support_client.get("/dispatches/?status=failed&q=J-1&page=2").content.decode()
    assert 'href="/dispatches/export.csv?status=failed&amp;q=J-1"' in text


def test_a_search_and_a_connector_filter_apply_to_the_export(support_client):
    wanted = DispatchFactory(event__appointment__job_no="J-55")
    DispatchFactory()
    other = DispatchFactory(connector=ConnectorFactory(source_app="OTHER"))
    assert [row["id"] for row in exported(support_client, "?q=J-55")] == [str(wanted.pk)]
    assert [row["id"] for row in exported(support_client, f"?connector={other.connector_id}")] \
        == [str(other.pk)]


def test_a_text_that_a_spreadsheet_would_run_as_a_formula_is_defused(support_client):
    DispatchFactory(last_error='=HYPERLINK("http://evil.test","click")', last_hint="@SUM(A1)")
    [row] = exported(support_client)
    assert row["last_error"] == '\'=HYPERLINK("http://evil.test","click")'
    assert row["last_hint"] == "'@SUM(A1)"


def test_bad_filters_export_nothing_and_say_why(support_client):
    response = support_client.get("/dispatches/export.csv?created_from=soon")
    assert response.status_code == 400
    assert response.content.decode() == (
        "Nothing exported; fix the filters first. From: Enter a date, or a date and time "
        "(e.g. 2026-11-21 or 2026-11-21 09:30).\n"
    )


def test_the_export_stops_at_its_limit_and_says_so(support_client, monkeypatch):
    made = [DispatchFactory() for _ in range(3)]
    monkeypatch.setattr(export, "EXPORT_LIMIT", 2)
    response = support_client.get("/dispatches/export.csv")
    assert response["X-Export-Truncated"] == "true"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 1 + 2 and lines[1].startswith(f"{made[-1].pk},")
    assert list(export.lines(DispatchFilters(), limit=1))[1].startswith(f"{made[-1].pk},")


def test_the_export_query_count_does_not_grow_with_the_rows(
    support_client, django_assert_max_num_queries
):
    connectors = [ConnectorFactory() for _ in range(3)]
    for index in range(30):
        DispatchFactory(connector=connectors[index % 3])
    support_client.get("/dispatches/")
    with django_assert_max_num_queries(9):
        response = support_client.get("/dispatches/export.csv")
        assert len(b"".join(response.streaming_content).splitlines()) == 31
