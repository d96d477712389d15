"""The project's URLs plus the benchmark's baseline page (used only by the benchmarks)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from connectors.dispatch_log.access import VIEW_PERMISSION, page_context, support_view
from dimeconnect.urls import urlpatterns as project_urlpatterns


@support_view(VIEW_PERMISSION)
def baseline(request: HttpRequest) -> HttpResponse:
    """The cheapest page with everything the measured pages share: the middleware, the session
    and login, the permission check and the admin's frame (admin/base_site.html)."""
    return render(request, "admin/base_site.html", page_context(request, title="Baseline"))


urlpatterns = [path("__benchmark__/baseline/", baseline), *project_urlpatterns]
