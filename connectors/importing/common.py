"""What `apply_connectors` and `import_backoffices` share: files, JSON, upsert, report."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.services import ConnectorSpec, SpecChange, SpecError, connectors_upsert


class InputError(Exception):
    """The input cannot be applied; `errors` are lines for the user, none holding a secret."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class FieldError(ValueError):
    """One value is unusable; the message says why without repeating a secret."""


@dataclass
class Parsed:
    """Specs read from a file, each with its position (entry or row number; 0 = the file).

    `errors` are (position, line) pairs found while reading; they are reported together with
    the model's validation errors, in input order.
    """

    specs: list[tuple[int, ConnectorSpec]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def read_text(path: str) -> str:
    """The file's text as UTF-8 (a byte order mark is dropped); raises InputError."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError([f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError([
            f"the file is not UTF-8 text (byte {exc.start + 1}); save it as UTF-8 "
            "(in Excel: \"CSV UTF-8\")"
        ]) from None


def parse_json(text: str) -> Any:
    """The decoded JSON; raises InputError naming the line and column of a syntax error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # exc.msg never quotes the document, so no secret from the file can leak here.
        raise InputError(
            [f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from None


def json_type(value: Any) -> str:
    """How JSON calls the value's type, with an article ("a string", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def upsert(
    parsed: Parsed, *, dry_run: bool, field_names: Mapping[str, str] | None = None
) -> list[SpecChange]:
    """Validate every spec and, when all are valid and not `dry_run`, write them.

    Reading errors and validation errors are raised together as one InputError, sorted by
    position; `field_names` renames model fields in validation errors (to the input's column
    names). Returns the changes in spec order.
    """
    errors = list(parsed.errors)
    specs = [spec for _, spec in parsed.specs]
    try:
        changes = connectors_upsert(specs, dry_run=dry_run or bool(errors))
    except SpecError as exc:
        errors.extend(_located(line, parsed.specs, field_names or {}) for line in exc.errors)
    if errors:
        raise InputError([line for _, line in sorted(errors, key=lambda error: error[0])])
    return changes


def _located(
    line: str, specs: Sequence[tuple[int, ConnectorSpec]], field_names: Mapping[str, str]
) -> tuple[int, str]:
    for position, spec in specs:
        prefix = f"{spec.label}: "
        if line.startswith(prefix):
            name, sep, message = line[len(prefix):].partition(": ")
            return position, f"{prefix}{field_names.get(name, name)}{sep}{message}"
    return 0, line


def report(
    changes: Sequence[SpecChange], *, dry_run: bool, labels: Sequence[str] | None = None
) -> list[str]:
    """One line per connector ("create X", "update X: field, …", "unchanged X"), then a summary.

    Changed secrets appear as field names only. `labels` (one per change) prefix the lines.
    """
    lines = [
        f"{labels[index]}: {change.describe()}" if labels else change.describe()
        for index, change in enumerate(changes)
    ]
    counts = {action: 0 for action in ("create", "update", "unchanged")}
    for change in changes:
        counts[change.action] += 1
    if dry_run:
        lines.append(
            f"Dry run, nothing written: {counts['create']} to create, "
            f"{counts['update']} to update, {counts['unchanged']} unchanged."
        )
    else:
        total = len(changes)
        lines.append(
            f"{total} connector{'s' if total != 1 else ''}: {counts['create']} created, "
            f"{counts['update']} updated, {counts['unchanged']} unchanged."
        )
    return lines


def error_message(path: str, errors: Sequence[str]) -> str:
    """The text of the CommandError: a heading naming the file, then one error per line."""
    count = len(errors)
    heading = f"{count} error{'s' if count != 1 else ''} in {path}; nothing written:"
    return "\n".join([heading, *(f"  {line}" for line in errors)])
