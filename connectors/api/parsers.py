"""The API's only parser: JSON, with the body size capped (settings.API_MAX_BODY_BYTES).

The declared Content-Length is checked before anything is read, and reading stops one byte past
the limit, so a body sent without (or with a false) Content-Length cannot exceed it either.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import JSONParser

from .exceptions import PayloadTooLarge


def declared_length(parser_context: Mapping[str, Any] | None) -> int | None:
    request = (parser_context or {}).get("request")
    if request is None:
        return None
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


class LimitedJSONParser(JSONParser):
    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit: int = settings.API_MAX_BODY_BYTES
        length = declared_length(parser_context)
        if length is not None and length > limit:
            raise PayloadTooLarge(limit)
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise PayloadTooLarge(limit)
        try:
            return super().parse(io.BytesIO(body), media_type, parser_context)
        except LookupError as exc:  # an unknown charset
            raise UnsupportedMediaType(media_type or "", "Unknown charset.") from exc
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc
