"""Routes under /api/ (included by dimeconnect/urls.py).

The last route answers every other /api/ path with the JSON 404, also when DEBUG is on (Django's
handler404 is used only with DEBUG off).
"""

from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from . import views
from .action_uris import AppointmentActionUrisView
from .errors import api_not_found

urlpatterns = [
    path(
        "v1/appointments/events/",
        views.AppointmentEventsView.as_view(),
        name="api-appointment-events",
    ),
    path(
        "v1/appointments/<str:guid>/action-uris/",
        AppointmentActionUrisView.as_view(),
        name="api-appointment-action-uris",
    ),
    path(
        "v1/dimescheduler/appointments/",
        views.DimeSchedulerAppointmentsView.as_view(),
        name="api-dimescheduler-appointments",
    ),
    re_path(
        r"^v1/dimescheduler/appointments/(?P<action>create|update|delete)/$",
        views.DimeSchedulerAppointmentActionView.as_view(),
        name="api-dimescheduler-appointment-action",
    ),
    path("v1/dispatches/", views.DispatchListView.as_view(), name="api-dispatches"),
    path(
        "schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[AllowAny]),
        name="api-schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(
            url_name="api-schema", authentication_classes=[], permission_classes=[AllowAny]
        ),
        name="api-docs",
    ),
    re_path(r"^(?P<unmatched>.*)$", api_not_found, name="api-not-found"),
]
