"""Reads for the dispatch log: the filtered list, counts per status, one dispatch with its
attempts, siblings and the appointment's Exchange sync log, the CSV rows.

Every query here is served by an index: the search compares business keys exactly (each has
an index: appointment GUID/no, job no, task no, AppointmentResource.resource_no, the event id,
the dispatch uid), never with LIKE '%…%', and the list is ordered by `created_at` (indexed).
Business Central's Code fields are upper case, so the search also tries the text upper-cased.
List rows never load the payload or a connector's secrets.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from connectors.models import (
    Appointment,
    AppointmentEvent,
    AppointmentResource,
    Attempt,
    Connector,
    Dispatch,
    DispatchStatus,
)
from exchange_sync.models import SyncLogEntry

ORDER = ("-created_at", "-id")  # newest first; the id breaks ties
OTHER_DISPATCHES_LIMIT = 50
SYNC_LOG_LIMIT = 50
MESSAGE_ID = re.compile(r"msg_([0-9a-fA-F]{32})")

# Only what a list row (or a CSV line) shows.
ROW_FIELDS: tuple[str, ...] = (
    "uid", "status", "action", "attempts", "next_attempt_at", "last_error", "last_hint",
    "last_status_code", "created_at", "delivered_at", "event",
    "connector__id", "connector__name", "connector__source_app",
    "appointment__id", "appointment__guid", "appointment__appointment_no",
    "appointment__appointment_id", "appointment__job_no", "appointment__task_no",
    "appointment__source_app",
)


@dataclass(frozen=True)
class DispatchFilters:
    """What the list shows; empty values filter nothing. `created_before` is exclusive."""

    status: str = ""
    connector_id: int | None = None
    source_app: str = ""
    created_from: datetime | None = None
    created_before: datetime | None = None
    q: str = ""

    @functools.cached_property
    def search_match(self) -> Q | None:
        """The search as a filter, looked up once per request (the list and the counts share
        it)."""
        return search(self.q) if self.q else None


# A search key matching more appointments or events than this is cut (it is not a key then).
MAX_SEARCH_IDS = 5000


def search(text: str) -> Q:
    """Dispatches whose business keys equal `text` (or `text` upper-cased).

    The keys are looked up first (small, indexed queries) and the dispatches then filtered on
    literal id lists: an OR of IN-subqueries makes both databases walk the whole dispatch table
    (docs/BENCHMARKS.md), while literal lists use the foreign-key indexes.
    """
    keys = sorted({text, text.upper()})
    as_uuid = _uuid(text)
    appointments = (
        Q(appointment_no__in=keys) | Q(job_no__in=keys) | Q(task_no__in=keys)
        | Q(pk__in=AppointmentResource.objects.filter(resource_no__in=keys)
            .values("appointment_id"))
    )
    if as_uuid is not None:
        appointments |= Q(guid=as_uuid)
    appointment_ids = list(
        Appointment.objects.filter(appointments).values_list("pk", flat=True)[:MAX_SEARCH_IDS]
    )
    event_ids = list(
        AppointmentEvent.objects.filter(event_id__in=keys)
        .values_list("pk", flat=True)[:MAX_SEARCH_IDS]
    )
    match = Q(appointment_id__in=appointment_ids) | Q(event_id__in=event_ids)
    if as_uuid is not None:
        match |= Q(uid=as_uuid)
    return match


def _uuid(text: str) -> uuid.UUID | None:
    """A GUID in any common spelling, or a dispatch's message id (`msg_<hex>`)."""
    found = MESSAGE_ID.fullmatch(text)
    try:
        return uuid.UUID(found.group(1) if found else text)
    except ValueError:
        return None


def dispatches(filters: DispatchFilters) -> QuerySet[Dispatch]:
    """The filtered dispatches, newest first, as list rows (connector and appointment joined)."""
    queryset = Dispatch.objects.select_related("connector", "appointment").only(*ROW_FIELDS)
    return _filtered(queryset, filters).order_by(*ORDER)


def _filtered(queryset: QuerySet[Dispatch], filters: DispatchFilters) -> QuerySet[Dispatch]:
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.connector_id is not None:
        queryset = queryset.filter(connector_id=filters.connector_id)
    if filters.source_app:
        queryset = queryset.filter(
            connector_id__in=Connector.objects.filter(source_app=filters.source_app)
            .values("pk")
        )
    if filters.created_from is not None:
        queryset = queryset.filter(created_at__gte=filters.created_from)
    if filters.created_before is not None:
        queryset = queryset.filter(created_at__lt=filters.created_before)
    if filters.q:
        queryset = queryset.filter(filters.search_match)
    return queryset


def status_counts(filters: DispatchFilters) -> dict[str, int]:
    """How many dispatches each status has under the filters, the status filter left out
    (so each count says what choosing that status would show). Every status is a key."""
    rows = (
        _filtered(Dispatch.objects.all(), replace(filters, status=""))
        .order_by()
        .values_list("status")
        .annotate(n=Count("id"))
    )
    counts = dict.fromkeys(DispatchStatus.values, 0)
    counts.update({status: n for status, n in rows})
    return counts


def source_app_choices() -> list[str]:
    """The source apps of the connectors (what the source-app filter offers)."""
    apps = Connector.objects.order_by("source_app").values_list("source_app", flat=True)
    return list(apps.distinct())


def connectors_by_id(ids: set[int]) -> dict[int, Connector]:
    """Whole connectors (their secrets decrypted, for a Redactor), by id."""
    return Connector.objects.in_bulk(ids) if ids else {}


def dispatch(pk: int) -> Dispatch | None:
    """One dispatch with its event (and API client), appointment and whole connector, and
    `has_sync_log`: whether the appointment has Exchange sync log entries (so the page reads
    them only when there are some)."""
    return (
        Dispatch.objects.select_related("event__client", "appointment", "connector")
        .annotate(has_sync_log=Exists(
            SyncLogEntry.objects.filter(appointment_id=OuterRef("appointment_id"))
        ))
        .filter(pk=pk)
        .first()
    )


def sync_log(dispatch: Dispatch) -> list[SyncLogEntry]:
    """The appointment's Exchange sync log entries, newest first, at most SYNC_LOG_LIMIT
    (none read when `dispatch()` found that there are none)."""
    if not getattr(dispatch, "has_sync_log", True):
        return []
    return list(
        SyncLogEntry.objects.filter(appointment_id=dispatch.appointment_id)
        .select_related("resource")
        .order_by("-at", "-id")[:SYNC_LOG_LIMIT]
    )


def attempts(dispatch: Dispatch) -> list[Attempt]:
    """Every attempt of the dispatch, oldest first."""
    return list(Attempt.objects.filter(dispatch_id=dispatch.pk).order_by("number", "id"))


def other_dispatches(dispatch: Dispatch) -> list[Dispatch]:
    """The appointment's other dispatches (every connector), newest first, at most 50."""
    return list(
        Dispatch.objects.filter(appointment_id=dispatch.appointment_id)
        .exclude(pk=dispatch.pk)
        .select_related("connector")
        .only("id", "status", "action", "created_at", "connector__id", "connector__name")
        .order_by(*ORDER)[:OTHER_DISPATCHES_LIMIT]
    )


def dispatch_exists(pk: int) -> bool:
    return Dispatch.objects.filter(pk=pk).exists()


def export_rows(filters: DispatchFilters, *, limit: int) -> Iterator[Mapping[str, Any]]:
    """The filtered dispatches as flat dicts, newest first, at most `limit`, streamed from
    the database in chunks."""
    rows = (
        _filtered(Dispatch.objects.all(), filters)
        .order_by(*ORDER)
        .values(
            "id", "uid", "created_at", "status", "action", "connector_id", "connector__name",
            "connector__source_app", "appointment__guid", "appointment__appointment_no",
            "appointment__job_no", "appointment__task_no", "event__event_id", "attempts",
            "last_status_code", "last_error", "last_hint", "next_attempt_at", "delivered_at",
        )[:limit]
    )
    return rows.iterator(chunk_size=2000)
