"""`GET /api/v1/appointments/{guid}/action-uris/`: an appointment's action URIs, rendered
(DESIGN.md, API and Action URIs; docs/ACTION_URIS.md).

Authenticated like the event API. An appointment of a source app the client may not see is
answered exactly like one that does not exist (404), so a client cannot probe for GUIDs.
"""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from connectors.action_uris import RenderedActionUri, action_uris_for
from connectors.compat import CrudType
from connectors.models import ApiClient, Appointment, RequestType, UrlType

from .schema import GET_ERRORS, error_responses
from .views import ApiView


class ActionUriQuerySerializer(serializers.Serializer[dict[str, Any]]):
    action = serializers.ChoiceField(
        choices=CrudType.choices,
        required=False,
        help_text="Fills #DATABASEACTION# (A, E, D). Without it: the action of the "
        "appointment's latest applied event.",
    )


class ActionUriSerializer(serializers.Serializer[dict[str, Any]]):
    url_type = serializers.ChoiceField(choices=UrlType.choices)
    description = serializers.CharField()
    uri = serializers.CharField(help_text="For POST: without the template's query string.")
    request_type = serializers.ChoiceField(choices=RequestType.choices)
    default = serializers.BooleanField()
    form_fields = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text="POST only: the template's query string as form fields (decoded), to send "
        "as an application/x-www-form-urlencoded body.",
    )


def api_item(rendered: RenderedActionUri) -> dict[str, Any]:
    item: dict[str, Any] = {
        "url_type": rendered.url_type,
        "description": rendered.description,
        "uri": rendered.uri,
        "request_type": rendered.request_type,
        "default": rendered.is_default,
    }
    if rendered.request_type == RequestType.POST:
        item["form_fields"] = rendered.form_fields
    return item


def visible_appointment(client: ApiClient, guid: str) -> Appointment:
    """The appointment, when it exists and belongs to one of the client's source apps; else
    NotFound, with the same message either way."""
    try:
        key = uuid.UUID(guid)
    except ValueError:
        key = None
    appointment = (
        Appointment.objects.filter(guid=key, source_app__in=client.source_apps).first()
        if key is not None
        else None
    )
    if appointment is None:
        raise NotFound(f"No appointment {guid} among this API client's source apps.")
    return appointment


class AppointmentActionUrisView(ApiView):
    @extend_schema(
        operation_id="appointment_action_uris_list",
        summary="An appointment's action URIs, rendered",
        description="Per URL type, the most specific templates (source app and the "
        "appointment's source type over source app alone), the default first. An appointment "
        "of another source app than the client's answers 404, like an unknown GUID.",
        parameters=[
            OpenApiParameter("guid", OpenApiTypes.UUID, OpenApiParameter.PATH),
            ActionUriQuerySerializer,
        ],
        responses={200: ActionUriSerializer(many=True), **error_responses(GET_ERRORS)},
        tags=["action URIs"],
    )
    def get(self, request: Request, guid: str) -> Response:
        query = ActionUriQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        appointment = visible_appointment(self.client, guid)
        rendered = action_uris_for(appointment, action=query.validated_data.get("action"))
        return Response([api_item(item) for item in rendered])
