"""Routes under /api/v1/exchange/ (dimeconnect/urls.py includes them before the `api/` include,
whose catch-all would otherwise answer 404)."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("notifications/", views.ChangeNotificationsView.as_view(),
         name="api-exchange-notifications"),
    path("lifecycle/", views.LifecycleNotificationsView.as_view(),
         name="api-exchange-lifecycle"),
]
