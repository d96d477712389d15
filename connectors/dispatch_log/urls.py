"""/dispatches/…: the dispatch log (included by dimeconnect/urls.py)."""

from __future__ import annotations

from django.urls import path

from . import health, views

app_name = "dispatch_log"

urlpatterns = [
    path("", views.dispatch_list, name="list"),
    path("health/", health.health_view, name="health"),
    path("export.csv", views.dispatch_export, name="export"),
    path("<int:pk>/", views.dispatch_detail, name="detail"),
    path("<int:pk>/retry/", views.dispatch_retry, name="retry"),
]
