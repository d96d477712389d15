"""The API's own exceptions (kept apart from errors.py: DRF's settings import parsers.py, which
must not import rest_framework.views)."""

from __future__ import annotations

from rest_framework import exceptions

RETRY_AFTER_UNAVAILABLE = 5  # seconds a client waits after a 503 (database unreachable)


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "too_large"
    default_detail = "The request body is too large."

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than the limit of {limit} bytes.")


class ServiceUnavailable(exceptions.APIException):
    status_code = 503
    default_code = "unavailable"
    default_detail = "The service is temporarily unavailable (database unreachable); retry later."
    wait = RETRY_AFTER_UNAVAILABLE  # DRF's handler turns `wait` into Retry-After


class SourceAppForbidden(exceptions.PermissionDenied):
    """The client may not post for these source apps; `fields` says which items named them."""

    default_code = "source_app_not_allowed"

    def __init__(self, message: str, fields: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.fields = fields
