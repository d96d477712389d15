"""The API's one error shape, for every error under /api/ (DRF's or Django's own).

    {"error": {"status": 400, "code": "invalid", "message": "…",
               "fields": {"0.appointment.guid": ["Must be a valid UUID."]}}}

`fields` appears only when errors belong to input fields; its keys are dotted paths into the
request body (an array's items by index). DRF exceptions go through `exception_handler`
(settings.REST_FRAMEWORK["EXCEPTION_HANDLER"]); errors Django raises before or outside a DRF
view get the same body from the `handler400/403/404/500` views wired in dimeconnect/urls.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from .exceptions import PayloadTooLarge, ServiceUnavailable

logger = logging.getLogger("connectors.api")

API_PREFIX = "/api/"

MESSAGES: dict[str, str] = {
    "not_authenticated": "Send an API key: `Authorization: Bearer <key>` or `X-API-KEY: <key>`.",
    "server_error": "Something went wrong on our side; it has been logged. Try again later.",
}


def error_body(
    status: int, code: str, message: str, fields: Mapping[str, list[str]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"status": status, "code": code, "message": message}
    if fields:
        error["fields"] = dict(fields)
    return {"error": error}


def error_response(status: int, code: str, message: str) -> JsonResponse:
    """The error body as a plain Django response (outside DRF views)."""
    return JsonResponse(error_body(status, code, message), status=status)


def flatten_errors(detail: Any, path: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """DRF's nested error detail as {"dotted.path": [messages]}; list items by index.

    Non-field errors of a nested object belong to the object's own path; at the root their key
    is "non_field_errors".
    """
    out: dict[str, list[str]] = {}
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            sub = path if key == api_settings.NON_FIELD_ERRORS_KEY and path else (*path, str(key))
            _merge(out, flatten_errors(value, sub))
    elif isinstance(detail, list | tuple):
        for index, item in enumerate(detail):
            if isinstance(item, Mapping | list | tuple):
                _merge(out, flatten_errors(item, (*path, str(index))))
            else:
                _merge(out, flatten_errors(item, path))
    else:
        key = ".".join(path) or api_settings.NON_FIELD_ERRORS_KEY
        out.setdefault(key, []).append(str(detail))
    return out


def _merge(into: dict[str, list[str]], more: dict[str, list[str]]) -> None:
    for key, messages in more.items():
        into.setdefault(key, []).extend(messages)


def _validation_body(exc: exceptions.ValidationError) -> dict[str, Any]:
    fields = flatten_errors(exc.detail)
    general = fields.pop(api_settings.NON_FIELD_ERRORS_KEY, [])
    if general:
        message = " ".join(general)
    elif fields:
        first_key, first = next(iter(fields.items()))
        more = sum(len(m) for m in fields.values()) - 1
        message = f"Invalid input: {first_key}: {first[0]}"
        message += f" (and {more} more)" if more else ""
    else:
        message = "Invalid input."
    return error_body(400, "invalid", message, fields)


def _api_body(exc: exceptions.APIException, status: int) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        return _validation_body(exc)
    code = exc.default_code if isinstance(exc.default_code, str) else "error"
    codes = exc.get_codes()
    if isinstance(codes, str):
        code = codes
    message = MESSAGES.get(code) or str(exc.detail)
    return error_body(status, code, message, getattr(exc, "fields", None))


def _as_api_exception(exc: Exception) -> exceptions.APIException | None:
    if isinstance(exc, exceptions.APIException):
        return exc
    if isinstance(exc, Http404):
        return exceptions.NotFound()  # Django's message may name models; keep the generic one
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(settings.API_MAX_BODY_BYTES)
    if isinstance(exc, OperationalError | InterfaceError):
        logger.error("Database unavailable while serving the API", exc_info=exc)
        return ServiceUnavailable()
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception of an API view becomes the error shape.

    Database connection errors answer 503 with Retry-After; anything unexpected is logged
    with its traceback and answers a plain 500 (never a traceback to the client).
    """
    api_exc = _as_api_exception(exc)
    response = drf_exception_handler(api_exc, context) if api_exc is not None else None
    if api_exc is None or response is None:
        logger.error("Unhandled error in %s", _view_name(context), exc_info=exc)
        set_rollback()
        return Response(error_body(500, "server_error", MESSAGES["server_error"]), status=500)
    response.data = _api_body(api_exc, response.status_code)
    return response


def _view_name(context: Mapping[str, Any]) -> str:
    view = context.get("view")
    return type(view).__name__ if view is not None else "an API view"


# --- Django-level handlers (dimeconnect/urls.py) ----------------------------------------------


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def not_found_message(request: HttpRequest) -> str:
    """"No such endpoint", pointing at the slash form when that one exists."""
    path = request.path_info
    if not path.endswith("/"):
        try:
            match = resolve(path + "/")
        except Resolver404:
            match = None
        if match is not None and match.url_name != "api-not-found":
            return f"No endpoint at {path}; did you mean {path}/ (with the trailing slash)?"
    return f"No endpoint at {path}."


@csrf_exempt  # a POST to a wrong path gets this 404, not the CSRF page
def api_not_found(request: HttpRequest, unmatched: str = "") -> JsonResponse:
    """The catch-all under /api/: JSON 404 also with DEBUG on (when handler404 is not used)."""
    return error_response(404, "not_found", not_found_message(request))


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not is_api_request(request):
        return defaults.bad_request(request, exception)  # type: ignore[arg-type]
    if isinstance(exception, RequestDataTooBig):
        return error_response(413, "too_large", str(PayloadTooLarge(settings.API_MAX_BODY_BYTES)))
    return error_response(400, "bad_request", "The request could not be understood.")


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not is_api_request(request):
        return defaults.permission_denied(request, exception)  # type: ignore[arg-type]
    return error_response(403, "permission_denied", "You do not have permission to do this.")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not is_api_request(request):
        return defaults.page_not_found(request, exception)
    return error_response(404, "not_found", not_found_message(request))


def handler500(request: HttpRequest) -> HttpResponse:
    if not is_api_request(request):
        return defaults.server_error(request)
    return error_response(500, "server_error", MESSAGES["server_error"])
