"""`apply_connectors` files: a JSON list of connector objects keyed by DESIGN.md's field names.

Keys present are set, absent keys keep the stored value (model defaults on create). A secret is
a string ("" clears it), null (keeps the stored one) or {"env": "VAR"} (read from the
environment). Every error names the entry and the key, never a secret's value.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from connectors.models import SECRET_FIELDS
from connectors.services import SPEC_FIELDS, ConnectorSpec

from .common import FieldError, InputError, Parsed, json_type, parse_json


def parse(text: str, *, environ: Mapping[str, str]) -> Parsed:
    """Specs for each entry of the file's JSON; raises InputError when it is not a list."""
    data = parse_json(text)
    if not isinstance(data, list):
        raise InputError([f"expected a JSON list of connector objects, not {json_type(data)}"])
    parsed = Parsed()
    for number, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            parsed.errors.append(
                (number, f"entry {number}: expected an object, not {json_type(entry)}")
            )
            continue
        spec, errors = _entry(number, entry, environ)
        parsed.errors.extend((number, line) for line in errors)
        if not errors:
            parsed.specs.append((number, spec))
    return parsed


def _entry(
    number: int, entry: dict[str, Any], environ: Mapping[str, str]
) -> tuple[ConnectorSpec, list[str]]:
    name = entry.get("name")
    label = f"entry {number} ('{name}')" if isinstance(name, str) and name else f"entry {number}"
    errors: list[str] = []
    values: dict[str, Any] = {}
    for key, value in entry.items():
        try:
            values[key] = _value(key, value, environ)
        except FieldError as exc:
            errors.append(f"{label}: {key}: {exc}")
    if "name" not in entry or name == "":
        errors.append(f"{label}: name: is required (connectors are matched by name)")
    ordered = {key: values[key] for key in SPEC_FIELDS if key in values}
    return ConnectorSpec(label=label, values=ordered), errors


def _value(key: str, value: Any, environ: Mapping[str, str]) -> Any:
    """The value to set for `key`; raises FieldError saying what the key needs."""
    if key not in SPEC_FIELDS:
        close = difflib.get_close_matches(key, SPEC_FIELDS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(SPEC_FIELDS)}"
        raise FieldError(f"unknown key; {hint}")
    if key in SECRET_FIELDS:
        return _secret(value, environ)
    if key == "enabled":
        if not isinstance(value, bool):
            raise FieldError(f"must be true or false, not {json_type(value)}")
    elif key == "timeout_s":
        if not isinstance(value, int) or isinstance(value, bool):
            raise FieldError(f"must be a whole number of seconds, not {json_type(value)}")
    elif key == "crud_types":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise FieldError('must be a list of strings such as ["create", "update", "delete"]')
    elif not isinstance(value, str):
        raise FieldError(f"must be a string, not {json_type(value)}")
    return value


def _secret(value: Any, environ: Mapping[str, str]) -> str | None:
    """A secret's value: as given, None (keep the stored one) or read from the environment."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise FieldError(f'must be a string, null or {{"env": "VARIABLE"}}, not {json_type(value)}')
    variable = value.get("env")
    if set(value) != {"env"} or not isinstance(variable, str) or not variable:
        raise FieldError('an object here must be {"env": "VARIABLE"}, naming a variable')
    resolved = environ.get(variable)
    if resolved is None:
        raise FieldError(f"environment variable {variable} is not set")
    if resolved == "":
        # An empty variable is far more often a deployment slip than a wish to clear the secret.
        raise FieldError(f'environment variable {variable} is empty (use "" to clear a secret)')
    return resolved
