"""Microsoft Graph's webhooks: parse, call one service, answer.

Graph calls these without user credentials, so they authenticate nobody: a notification is
trusted only when every item names a known subscription with its clientState (checked in
constant time against the stored hash), and even then it only schedules a delta round that reads
the mailbox itself. Spec: https://learn.microsoft.com/graph/change-notifications-delivery-webhooks

- `?validationToken=…` (Graph's reachability check while a subscription is created or renewed):
  200 text/plain with the decoded token, without touching the database (Graph waits 10 s).
- Otherwise `{"value": [notification, …]}`: 202 with an empty body once stored; 400 for a body
  that is not that shape, 403 (nothing stored) when any item fails the clientState check.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from connectors.api.parsers import LimitedJSONParser
from connectors.api.schema import error_responses

from ..notifications import NotificationInvalid, NotificationRefused, notifications_accept

MAX_VALIDATION_TOKEN = 1024  # Graph's tokens are about 100 characters
TEXT = "text/plain; charset=utf-8"
NOTIFICATION_ERRORS = (400, 403, 405, 413, 415, 500, 503)

VALIDATION_TOKEN = OpenApiParameter(
    "validationToken", OpenApiTypes.STR, OpenApiParameter.QUERY,
    description="Graph's reachability check: answered 200 text/plain with the token itself "
    f"(at most {MAX_VALIDATION_TOKEN} characters); the body is then ignored.",
)
NOTIFICATIONS_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["value"],
    "additionalProperties": True,
    "properties": {
        "value": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object", "required": ["subscriptionId", "clientState"],
                "additionalProperties": True,
                "properties": {
                    "subscriptionId": {"type": "string"},
                    "clientState": {"type": "string"},
                    "changeType": {"type": "string", "example": "updated"},
                    "lifecycleEvent": {"type": "string", "enum": [
                        "reauthorizationRequired", "subscriptionRemoved", "missed"]},
                    "resource": {"type": "string"},
                },
            },
        },
        "validationTokens": {"type": "array", "items": {"type": "string"},
                             "description": "Ignored (rich notifications are not used)."},
    },
}


def _schema(operation_id: str, summary: str) -> Any:
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description="Called by Microsoft Graph, not by API clients: no API key. Every item's "
        "clientState must match its subscription, else 403 and nothing is stored.",
        parameters=[VALIDATION_TOKEN],
        request={"application/json": NOTIFICATIONS_BODY},
        responses={
            (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR,
                                                 description="The validation token."),
            (202, "application/json"): OpenApiResponse(
                description="Stored; the mailbox's delta round is scheduled (empty body)."),
            **error_responses(NOTIFICATION_ERRORS),
        },
        auth=[],
        tags=["exchange"],
    )


class GraphNotificationsView(APIView):
    """POST only, CSRF exempt (DRF views are, without session authentication), no user
    authentication and no rate limit (Graph must never be throttled by us: it would drop
    notifications)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []
    parser_classes = [LimitedJSONParser]
    http_method_names = ["post"]

    def post(self, request: Request) -> HttpResponse:
        token = request.query_params.get("validationToken")
        if token is not None:
            if len(token) > MAX_VALIDATION_TOKEN:
                raise ValidationError({"validationToken": [
                    f"Ensure this field has no more than {MAX_VALIDATION_TOKEN} characters."]})
            return HttpResponse(token, content_type=TEXT)
        try:
            notifications_accept(body=request.data)
        except NotificationInvalid as exc:
            raise ValidationError(str(exc)) from None
        except NotificationRefused as exc:
            raise PermissionDenied(str(exc)) from None
        return Response(status=202)


class ChangeNotificationsView(GraphNotificationsView):
    @_schema("exchange_notifications_create", "Receive Microsoft Graph change notifications")
    def post(self, request: Request) -> HttpResponse:
        return super().post(request)


class LifecycleNotificationsView(GraphNotificationsView):
    @_schema("exchange_lifecycle_create", "Receive Microsoft Graph lifecycle notifications")
    def post(self, request: Request) -> HttpResponse:
        return super().post(request)
