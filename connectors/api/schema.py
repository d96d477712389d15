"""OpenAPI details drf-spectacular cannot infer: both key headers and every error answer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer

from connectors.compat import CrudType

from .serializers import MAX_EVENTS, ErrorSerializer, EventSerializer

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid input; `fields` names each wrong field by its path (array items by index).",
    401: "No API key, or an unknown or inactive one.",
    403: "Not allowed (e.g. a source app this API client may not post for).",
    404: "Not found (e.g. an invalid cursor).",
    405: "Method not allowed.",
    406: "The Accept header asks for something other than JSON.",
    413: "The body is larger than API_MAX_BODY_BYTES.",
    415: "The body is not JSON (Content-Type must be application/json).",
    429: "Over the per-client rate (API_RATE); see Retry-After.",
    500: "Unexpected error (logged).",
    503: "The database is unreachable; see Retry-After.",
}
POST_ERRORS = (400, 401, 403, 405, 406, 413, 415, 429, 500, 503)
GET_ERRORS = (400, 401, 403, 404, 405, 406, 429, 500, 503)


def error_responses(codes: tuple[int, ...]) -> dict[int, OpenApiResponse]:
    return {
        code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code])
        for code in codes
    }


EVENTS_REQUEST = PolymorphicProxySerializer(
    component_name="EventOrEvents",
    serializers=[EventSerializer, EventSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)


def events_array_bounds(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """SPECTACULAR postprocessing hook: the events array holds 1 to MAX_EVENTS items."""
    schema = result.get("components", {}).get("schemas", {}).get("EventOrEventsRequest", {})
    for option in schema.get("oneOf", []):
        if option.get("type") == "array":
            option.update({"minItems": 1, "maxItems": MAX_EVENTS})
    return result


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Either header authenticates (OpenAPI: two alternative requirements)."""

    target_class = "connectors.api.authentication.ApiKeyAuthentication"
    name = ["bearerAuth", "apiKeyHeader"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"bearerAuth": []}, {"apiKeyHeader": []}]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {"type": "http", "scheme": "bearer", "description": "The API client's key."},
            {"type": "apiKey", "in": "header", "name": "X-API-KEY",
             "description": "The API client's key."},
        ]


# --- The Dime.Scheduler endpoint (its body is mapped by hand, not by a serializer) ------------

ACTION_PARAMETER = OpenApiParameter(
    "action", OpenApiTypes.STR, OpenApiParameter.QUERY, enum=list(CrudType.values),
    description="create | update | delete. Without it, the body's DatabaseAction (I/U/D).",
)
ACTION_PATH_PARAMETER = OpenApiParameter(
    "action", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(CrudType.values)
)
WEBHOOK_HEADERS = [
    OpenApiParameter(
        "webhook-id", {"type": "string", "maxLength": 200}, OpenApiParameter.HEADER,
        description="The sender's unique message id (Standard Webhooks); the event_id.",
    ),
    OpenApiParameter(
        "webhook-timestamp", {"type": "string", "pattern": r"^\d{1,10}$"},
        OpenApiParameter.HEADER,
        description="Unix seconds (Standard Webhooks); the event's occurred_at.",
    ),
]
def _text(max_length: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "nullable": True}
    if max_length:
        schema["maxLength"] = max_length
    return schema


DIMESCHEDULER_BODY: dict[str, Any] = {
    "type": "object",
    "description": "The appointment as Dime.Scheduler's webhook connector posts it. StartDate "
    "and EndDate are required unless the action is delete; naive times are read as UTC.",
    "additionalProperties": True,
    "properties": {
        "AppointmentGuid": {"type": "string", "format": "uuid"},
        "AppointmentId": {"type": "integer", "minimum": 0, "nullable": True},
        "AppointmentNo": _text(50),
        "Subject": _text(),
        "Body": _text(),
        "StartDate": {"type": "string", "format": "date-time"},
        "EndDate": {"type": "string", "format": "date-time"},
        "IsAllDay": {"type": "boolean", "nullable": True},
        "Category": _text(),
        "TimeMarker": _text(),
        "Importance": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1,
                       "nullable": True},
        "Locked": {"type": "boolean", "nullable": True},
        "PlanningUOM": _text(20),
        "PlanningQuantity": {"type": "number", "nullable": True},
        "BackofficeId": _text(250),
        "DatabaseAction": {"type": "string", "enum": ["I", "U", "D"]},
        "Task": {
            "type": "object",
            "required": ["Job"],
            "properties": {
                "TaskNo": _text(50),
                "Job": {
                    "type": "object",
                    "required": ["SourceApp"],
                    "properties": {
                        "SourceApp": {"type": "string", "minLength": 1, "maxLength": 30},
                        "SourceType": _text(10),
                        "JobNo": _text(50),
                    },
                },
            },
        },
        "Assignments": {
            "type": "array",
            "nullable": True,
            "items": {
                "type": "object",
                "required": ["Resource"],
                "properties": {
                    "Resource": {
                        "type": "object",
                        "required": ["ResourceNo"],
                        "properties": {
                            "ResourceNo": {"type": "string", "minLength": 1, "maxLength": 50},
                            "Email": {"type": "string", "format": "email", "nullable": True},
                        },
                    }
                },
            },
        },
        "FieldValues": {"type": "object", "additionalProperties": True, "nullable": True},
    },
    "required": ["AppointmentGuid", "StartDate", "EndDate", "Task"],
}
