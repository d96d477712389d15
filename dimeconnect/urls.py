from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from connectors.api import errors as api_errors

from . import views

admin.site.site_header = "DimeConnect"
admin.site.site_title = "DimeConnect"
admin.site.index_title = "Connector hub"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/exchange/", include("exchange_sync.api.urls")),
    path("api/", include("connectors.api.urls")),
    path("dispatches/", include("connectors.dispatch_log.urls")),
]

# Errors Django raises outside the API's views: JSON under /api/, Django's pages elsewhere.
handler400 = api_errors.handler400
handler403 = api_errors.handler403
handler404 = api_errors.handler404
handler500 = api_errors.handler500
