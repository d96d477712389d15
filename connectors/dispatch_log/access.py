"""Who may open the dispatch log pages, and the pages' admin look.

Anonymous visitors go to the admin login page (and come back after it); a user without the
permission gets a 403 page that names the permission to ask for. The admin login admits staff
users only, so support staff are staff users in the "Support" group (docs/DISPATCH_LOG.md).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse

from connectors.models import RETRY_DISPATCH_PERMISSION, VIEW_DISPATCH_PERMISSION

VIEW_PERMISSION = VIEW_DISPATCH_PERMISSION
RETRY_PERMISSION = RETRY_DISPATCH_PERMISSION
PERMISSION_NAMES = {
    VIEW_PERMISSION: "Can view dispatch",
    RETRY_PERMISSION: "Can retry a dispatch",
}

View = Callable[..., HttpResponseBase]


def page_context(request: HttpRequest, **context: Any) -> dict[str, Any]:
    """The admin's own context (site header, user links) plus `context`. The admin's nav
    sidebar is left out: the log's tables need the width (the breadcrumbs lead back)."""
    return {**admin.site.each_context(request), "is_nav_sidebar_enabled": False, **context}


def forbidden(request: HttpRequest, permission: str) -> HttpResponse:
    context = page_context(
        request,
        title="Permission needed",
        permission=permission,
        permission_name=PERMISSION_NAMES.get(permission, permission),
    )
    return render(request, "dispatch_log/forbidden.html", context, status=403)


def support_view(*permissions: str) -> Callable[[View], View]:
    """Require a logged-in user with every one of `permissions`."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), reverse("admin:login"))
            for permission in permissions:
                if not request.user.has_perm(permission):
                    return forbidden(request, permission)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
