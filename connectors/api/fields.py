"""Serializer fields for the event API: strict where a loose value would surprise a receiver.

Every value they accept can be stored as JSON on SQLite and PostgreSQL alike (no NUL characters,
no lone surrogates, no infinities) and sent on to any back office unchanged.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from connectors.backoffices.payloads import iso_utc

NAIVE_AS_UTC = "naive_as_utc"  # serializer context flag: read a naive datetime as UTC
MAX_JSON_DEPTH = 16
_SURROGATE = re.compile("[\ud800-\udfff]")


@extend_schema_field(OpenApiTypes.UUID)
class StrictUUIDField(serializers.Field):
    """A UUID given as a string; answers it in the canonical lower-case hyphenated form."""

    default_error_messages = {"invalid": "Must be a valid UUID."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or len(data) > 64:
            self.fail("invalid")
        try:
            return str(uuid.UUID(data.strip()))
        except ValueError:
            self.fail("invalid")

    def to_representation(self, value: Any) -> str:
        return str(value)


@extend_schema_field(OpenApiTypes.DATETIME)
class AwareDateTimeField(serializers.Field):
    """An ISO 8601 date and time with a time zone, returned as an aware UTC datetime.

    A naive value is refused, unless the serializer's context sets NAIVE_AS_UTC (the
    Dime.Scheduler endpoint: Dime.Scheduler keeps times in UTC).
    """

    default_error_messages = {
        "invalid": "Enter an ISO 8601 date and time, e.g. 2026-11-21T09:00:00Z.",
        "naive": "Give a time zone: end the time with Z or an offset such as +01:00 "
        "(got '{value}').",
    }

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str) or len(data) > 64:
            self.fail("invalid")
        try:
            value = parse_datetime(data.strip())
        except ValueError:
            value = None
        if value is None:
            self.fail("invalid")
        if value.utcoffset() is None:
            if not self.context.get(NAIVE_AS_UTC):
                self.fail("naive", value=data)
            value = value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):  # e.g. year 1 at +01:00
            self.fail("invalid")

    def to_representation(self, value: datetime) -> str:
        return iso_utc(value)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "pattern": r"^-?\d{1,12}(\.\d{1,6})?$"},
            {"type": "number"},
        ],
        "example": "2.5",
    }
)
class DecimalStringField(serializers.Field):
    """A decimal given as a string or a number; returned as a normalised string ("2.5")."""

    max_integer_digits = 12
    max_decimal_places = 6
    default_error_messages = {
        "invalid": "Enter a number, e.g. 2.5 or \"2.5\".",
        "range": "Use at most 12 digits before and 6 after the decimal point.",
    }

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            self.fail("invalid")
        text = str(data).strip()
        if len(text) > 40:
            self.fail("range")
        try:
            number = Decimal(text)
        except InvalidOperation:
            self.fail("invalid")
        if not number.is_finite():
            self.fail("invalid")
        if number.is_zero():
            return "0"
        exponent = number.normalize().as_tuple().exponent
        assert isinstance(exponent, int)  # finite
        if abs(number) >= Decimal(10) ** self.max_integer_digits or -exponent > 6:
            self.fail("range")
        return format(number.normalize(), "f")

    def to_representation(self, value: Any) -> str:
        return str(value)


def json_problem(value: Any, depth: int = 0) -> str | None:
    """Why a parsed JSON value cannot be stored everywhere, or None when it can."""
    if depth > MAX_JSON_DEPTH:
        return f"nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character"
        if _SURROGATE.search(value):
            return "contains an unpaired surrogate character"
    elif isinstance(value, float) and not math.isfinite(value):
        return "contains a number out of range"
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = json_problem(key, depth + 1) or json_problem(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = json_problem(item, depth + 1)
            if problem:
                return problem
    return None


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.Field):
    """Any JSON object (free-form extra fields), refused when it could not be stored."""

    default_error_messages = {
        "not_object": "Expected a JSON object.",
        "unstorable": "Cannot be stored: it {problem}.",
    }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail("not_object")
        problem = json_problem(data)
        if problem:
            self.fail("unstorable", problem=problem)
        return data

    def to_representation(self, value: Any) -> Any:
        return value
