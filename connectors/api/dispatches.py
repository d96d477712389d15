"""`GET /api/v1/dispatches/`: the read-only dispatch list for support tooling.

Newest first, cursor-paginated (stable while new dispatches arrive). An API client sees only
dispatches to connectors of its allowed source apps; a user with `connectors.view_dispatch`
sees all. Neither connector secrets nor payloads are ever part of an item.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from connectors.models import ApiClient, Dispatch, DispatchStatus

# Only what an item shows: connector secrets are never even loaded (nor decrypted).
ITEM_FIELDS: tuple[str, ...] = (
    "uid", "status", "action", "attempts", "next_attempt_at", "last_error", "last_hint",
    "last_status_code", "created_at", "delivered_at",
    "connector__id", "connector__name",
    "appointment__guid", "appointment__appointment_no", "appointment__job_no",
    "appointment__task_no", "appointment__source_app",
    "event__event_id",
)


class DispatchQuerySerializer(serializers.Serializer[dict[str, Any]]):
    status = serializers.ChoiceField(choices=DispatchStatus.choices, required=False)
    connector = serializers.CharField(
        max_length=100, required=False, help_text="A connector's id or exact name."
    )
    source_app = serializers.CharField(max_length=30, required=False)
    q = serializers.CharField(
        max_length=200,
        required=False,
        help_text="Searches appointment GUID and no, job no, task no and event id.",
    )


def dispatches_for(
    *, client: ApiClient | None, filters: dict[str, Any]
) -> QuerySet[Dispatch]:
    """The dispatches a caller may see (a client: its source apps' only), filtered."""
    queryset = Dispatch.objects.select_related("connector", "appointment", "event").only(
        *ITEM_FIELDS
    )
    if client is not None:
        queryset = queryset.filter(connector__source_app__in=client.source_apps)
    if filters.get("status"):
        queryset = queryset.filter(status=filters["status"])
    if filters.get("connector"):
        connector = filters["connector"]
        match = Q(connector__name=connector)
        if connector.isdigit() and len(connector) < 19:  # fits a bigint
            match |= Q(connector_id=int(connector))
        queryset = queryset.filter(match)
    if filters.get("source_app"):
        queryset = queryset.filter(connector__source_app=filters["source_app"])
    if filters.get("q"):
        queryset = queryset.filter(_search(filters["q"]))
    return queryset


def _search(text: str) -> Q:
    return (
        Q(appointment__guid__icontains=text)
        | Q(appointment__appointment_no__icontains=text)
        | Q(appointment__job_no__icontains=text)
        | Q(appointment__task_no__icontains=text)
        | Q(event__event_id__icontains=text)
    )


class DispatchPagination(CursorPagination):
    ordering = "-id"  # newest first; the primary key is unique, so the cursor is exact
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        # The position is compared with the id: a forged non-numeric one would be a DB error.
        position = None if cursor is None else cursor.position
        if position is not None and not (str(position).isdigit() and len(str(position)) < 19):
            raise NotFound(self.invalid_cursor_message)
        return cursor


class DispatchConnectorSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class DispatchAppointmentSerializer(serializers.Serializer[Any]):
    guid = serializers.UUIDField()
    appointment_no = serializers.CharField()
    job_no = serializers.CharField()
    task_no = serializers.CharField()
    source_app = serializers.CharField()


class DispatchSerializer(serializers.Serializer[Dispatch]):
    id = serializers.UUIDField(source="uid", help_text="The dispatch's stable id.")
    status = serializers.ChoiceField(choices=DispatchStatus.choices)
    action = serializers.CharField()
    connector = DispatchConnectorSerializer()
    appointment = DispatchAppointmentSerializer()
    event_id = serializers.CharField(source="event.event_id")
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    last_hint = serializers.CharField()
    last_status_code = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)
