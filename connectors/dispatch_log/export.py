"""The filtered dispatch list as CSV (`/dispatches/export.csv`), streamed.

One line per dispatch, newest first, at most EXPORT_LIMIT lines (the response says when it
was cut: header `X-Export-Truncated: true`). The columns are COLUMNS, documented in
docs/DISPATCH_LOG.md. No payloads and no connector secrets are selected; last errors and hints
are redacted once more with their connector's Redactor. A text cell that starts with = + - @
(or a tab / carriage return) gets a leading apostrophe, so a spreadsheet never runs a
back office's error message as a formula.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.http import StreamingHttpResponse

from connectors.backoffices.redact import Redactor, redactor_for
from connectors.models import Connector

from .selectors import DispatchFilters, export_rows

EXPORT_LIMIT = 100_000
FILENAME = "dispatches.csv"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# (header, row key); times are ISO 8601 in UTC.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "id"),
    ("dispatch_uid", "uid"),
    ("created_at", "created_at"),
    ("status", "status"),
    ("action", "action"),
    ("connector", "connector__name"),
    ("source_app", "connector__source_app"),
    ("appointment_guid", "appointment__guid"),
    ("appointment_no", "appointment__appointment_no"),
    ("job_no", "appointment__job_no"),
    ("task_no", "appointment__task_no"),
    ("event_id", "event__event_id"),
    ("attempts", "attempts"),
    ("last_status_code", "last_status_code"),
    ("last_error", "last_error"),
    ("last_hint", "last_hint"),
    ("next_attempt_at", "next_attempt_at"),
    ("delivered_at", "delivered_at"),
)
REDACTED_KEYS = frozenset({"last_error", "last_hint"})


class _Echo:
    """csv.writer's file: each write returns the line, to be streamed."""

    def write(self, value: str) -> str:
        return value


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_START):
        return "'" + text
    return text


def lines(filters: DispatchFilters, *, limit: int) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow([header for header, _ in COLUMNS])
    # Connectors are few: one query for all of them, not one per line or per connector.
    redactors = {connector.pk: redactor_for(connector) for connector in Connector.objects.all()}
    for row in export_rows(filters, limit=limit):
        redactor = redactors.get(row["connector_id"]) or Redactor()
        yield writer.writerow([
            cell(redactor.text(row[key]) if key in REDACTED_KEYS else row[key])
            for _, key in COLUMNS
        ])


def csv_response(filters: DispatchFilters, *, total: int) -> StreamingHttpResponse:
    """The streamed CSV; `total` (the filtered count) decides the truncation header."""
    response = StreamingHttpResponse(
        lines(filters, limit=EXPORT_LIMIT), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{FILENAME}"'
    response["X-Export-Truncated"] = "true" if total > EXPORT_LIMIT else "false"
    return response
