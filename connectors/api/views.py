"""The API's views: parse, call the service, answer (DESIGN.md, API)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import UnsupportedMediaType, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from connectors.intake import EventOutcome, IncomingEvent, events_accept
from connectors.models import ApiClient, Dispatch

from . import dimescheduler
from .access import check_source_apps
from .authentication import ApiKeyAuthentication, client_of
from .dispatches import (
    DispatchPagination,
    DispatchQuerySerializer,
    DispatchSerializer,
    dispatches_for,
)
from .fastpath import validated_events
from .parsers import LimitedJSONParser
from .permissions import CanViewDispatches, IsApiClient
from .schema import (
    ACTION_PARAMETER,
    ACTION_PATH_PARAMETER,
    DIMESCHEDULER_BODY,
    EVENTS_REQUEST,
    GET_ERRORS,
    POST_ERRORS,
    WEBHOOK_HEADERS,
    error_responses,
)
from .serializers import MAX_EVENTS, EventsAcceptedSerializer, EventSerializer, incoming_event
from .throttling import ApiClientRateThrottle

JSON = "application/json"


def accepted_body(outcomes: Sequence[EventOutcome]) -> dict[str, Any]:
    results = [outcome.as_dict() for outcome in outcomes]
    accepted = sum(1 for r in results if r["status"] == "accepted")
    return {"results": results, "accepted": accepted, "duplicates": len(results) - accepted}


class ApiView(APIView):
    """Base of the API-key endpoints: JSON in (size-capped), the client's rate, one error shape."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsApiClient]
    throttle_classes = [ApiClientRateThrottle]
    parser_classes = [LimitedJSONParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method == "POST" and request.content_type.split(";")[0].strip().lower() != JSON:
            # DRF would only notice when parsing a non-empty body.
            raise UnsupportedMediaType(request.content_type or "none")

    @property
    def client(self) -> ApiClient:
        client = client_of(self.request)
        assert client is not None  # IsApiClient
        return client

    def accept(self, events: Sequence[IncomingEvent], *, indexed: bool, field: str) -> Response:
        client = self.client

        def authorize(owners: Mapping[str, str]) -> None:
            check_source_apps(client, events, owners, indexed=indexed, field=field)

        outcomes = events_accept(client=client, events=events, authorize=authorize)
        return Response(accepted_body(outcomes), status=202)


class AppointmentEventsView(ApiView):
    @extend_schema(
        operation_id="appointment_events_create",
        summary="Post appointment events",
        description="One event object, or an array of 1 to 500. Each is answered `accepted` "
        "(with the number of dispatches it made) or `duplicate` (its event_id was already "
        "posted by this client). Nothing is stored unless the whole request is valid.",
        request=EVENTS_REQUEST,
        responses={202: EventsAcceptedSerializer, **error_responses(POST_ERRORS)},
        tags=["events"],
    )
    def post(self, request: Request) -> Response:
        data = request.data
        if isinstance(data, list):
            if not data:
                raise ValidationError("Send at least one event.")
            if len(data) > MAX_EVENTS:
                raise ValidationError(
                    f"At most {MAX_EVENTS} events per request; this one has {len(data)}."
                )
        elif not isinstance(data, dict):
            raise ValidationError("Send one event object or a JSON array of them.")
        items = validated_events(data if isinstance(data, list) else [data])
        if items is None:  # not all plainly well formed: the serializer decides (and explains)
            serializer = EventSerializer(data=data, many=isinstance(data, list))
            serializer.is_valid(raise_exception=True)
            validated = serializer.validated_data
            items = validated if isinstance(data, list) else [validated]
        events = [incoming_event(item) for item in items]
        return self.accept(events, indexed=isinstance(data, list), field="appointment.source_app")


def _dimescheduler_schema(path_action: bool) -> Any:
    return extend_schema(
        operation_id="dimescheduler_appointment_" + ("action" if path_action else "create"),
        summary="Post one appointment as Dime.Scheduler's webhook connector does",
        description="The PascalCase appointment of Dime.Scheduler's webhook connector, mapped "
        "onto the event API's appointment (source app from Task.Job.SourceApp). The event_id is "
        "the webhook-id header, else derived from the action and body (a resent identical body "
        "is a duplicate). Answers like the event API.",
        parameters=[ACTION_PATH_PARAMETER if path_action else ACTION_PARAMETER, *WEBHOOK_HEADERS],
        request={JSON: DIMESCHEDULER_BODY},
        responses={202: EventsAcceptedSerializer, **error_responses(POST_ERRORS)},
        tags=["dimescheduler"],
    )


class DimeSchedulerAppointmentsView(ApiView):
    @_dimescheduler_schema(path_action=False)
    def post(self, request: Request, action: str | None = None) -> Response:
        action = dimescheduler.resolve_action(
            action, request.query_params.get("action"), request.data
        )
        event = dimescheduler.dimescheduler_event(
            client=self.client, action=action, body=request.data, meta=request.META
        )
        return self.accept([event], indexed=False, field="Task.Job.SourceApp")


class DimeSchedulerAppointmentActionView(DimeSchedulerAppointmentsView):
    @_dimescheduler_schema(path_action=True)
    def post(self, request: Request, action: str | None = None) -> Response:
        return super().post(request, action)


class DispatchListView(ListAPIView[Dispatch]):
    authentication_classes = [ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [CanViewDispatches]
    throttle_classes = [ApiClientRateThrottle]
    serializer_class = DispatchSerializer
    pagination_class = DispatchPagination

    @extend_schema(
        operation_id="dispatches_list",
        summary="List dispatches (newest first)",
        description="Read-only, cursor-paginated. An API client sees the dispatches of its "
        "source apps; a logged-in user needs connectors.view_dispatch.",
        parameters=[DispatchQuerySerializer],
        responses={200: DispatchSerializer(many=True), **error_responses(GET_ERRORS)},
        tags=["dispatches"],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Dispatch]:
        query = DispatchQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return dispatches_for(client=client_of(self.request), filters=query.validated_data)
