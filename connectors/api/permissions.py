"""Who may call which endpoint."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from connectors.models import VIEW_DISPATCH_PERMISSION

from .authentication import client_of


class IsApiClient(BasePermission):
    """Only a request authenticated with an API key."""

    message = "Only an API client may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return client_of(request) is not None


class CanViewDispatches(BasePermission):
    """An API client (limited to its source apps by the view) or a user with view_dispatch."""

    message = "Viewing dispatches needs the connectors.view_dispatch permission."

    def has_permission(self, request: Request, view: Any) -> bool:
        if client_of(request) is not None:
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(VIEW_DISPATCH_PERMISSION))
