"""Outbound rules: which appointments of a resource go to its Outlook calendar.

A rule is `field operator value` (an `OutboundRule` row); a resource's rules combine with its
`rule_match` (all / any); no rules means every appointment goes. Rules are data, evaluated
here with typed comparisons only: no `eval`, no `exec`, no regular expression from users.

`appointment_data` is `Appointment.data`, the event API's appointment JSON (DESIGN.md, API):
start/end are ISO 8601 strings, `planning_qty` a decimal string or null, `field_values` a dict.

Comparisons:
- text: equals, contains, starts/ends with and in (a comma-separated list, items trimmed) ignore
  case; gt/lt do not apply;
- number, decimal, datetime: compared as values (a datetime rule's value is ISO 8601; one
  without a UTC offset is UTC);
- boolean: equals / not equals `true` or `false`;
- a missing, null or blank field is empty: only is_empty passes, and the negative operators
  (not_equals, not_contains, not_in) pass too.
`field_values.<name>` compares as text, or as a number / boolean when the stored value is one;
its gt/lt compare numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

from .models.resources import RuleMatch, RuleOperator

if TYPE_CHECKING:
    from .models import OutboundRule, Resource

FIELD_VALUES_PREFIX = "field_values."
TEXT, NUMBER, DECIMAL, BOOLEAN, DATETIME = "text", "number", "decimal", "boolean", "datetime"
DATETIME_EXAMPLE = "2026-11-21T09:00:00Z"
SHOWN_LIMIT = 60  # characters of a field's value shown in a reason


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # text | number | decimal | boolean | datetime
    label: str
    derived: bool = False


def _spec(name: str, kind: str, label: str, derived: bool = False) -> tuple[str, FieldSpec]:
    return name, FieldSpec(name, kind, label, derived)


FIELDS: dict[str, FieldSpec] = dict([
    _spec("subject", TEXT, "Subject"),
    _spec("body", TEXT, "Body"),
    _spec("category", TEXT, "Category"),
    _spec("time_marker", TEXT, "Time marker"),
    _spec("importance", NUMBER, "Importance"),
    _spec("locked", BOOLEAN, "Locked"),
    _spec("is_all_day", BOOLEAN, "All day"),
    _spec("planning_uom", TEXT, "Planning unit of measure"),
    _spec("planning_qty", DECIMAL, "Planning quantity"),
    _spec("job_no", TEXT, "Job no"),
    _spec("task_no", TEXT, "Task no"),
    _spec("appointment_no", TEXT, "Appointment no"),
    _spec("appointment_id", NUMBER, "Appointment ID"),
    _spec("source_type", TEXT, "Source type"),
    _spec("backoffice_id", TEXT, "Back-office ID"),
    _spec("start", DATETIME, "Start"),
    _spec("end", DATETIME, "End"),
    _spec("duration_minutes", NUMBER, "Duration (minutes, end − start)", derived=True),
    _spec("resource_count", NUMBER, "Number of resources", derived=True),
])

Op = RuleOperator
NO_VALUE = frozenset({Op.IS_EMPTY, Op.IS_NOT_EMPTY})
# Operators that pass on an empty field (everything else but is_empty fails on one).
NEGATIVE = frozenset({Op.NOT_EQUALS, Op.NOT_CONTAINS, Op.NOT_IN})
LISTS = frozenset({Op.IN, Op.NOT_IN})
ORDERING = frozenset({Op.GREATER_THAN, Op.GREATER_OR_EQUAL, Op.LESS_THAN, Op.LESS_OR_EQUAL})
_TEXT_OPS = (Op.EQUALS, Op.NOT_EQUALS, Op.CONTAINS, Op.NOT_CONTAINS, Op.STARTS_WITH, Op.ENDS_WITH,
             Op.IN, Op.NOT_IN, Op.IS_EMPTY, Op.IS_NOT_EMPTY)
_NUMBER_OPS = (Op.EQUALS, Op.NOT_EQUALS, Op.IN, Op.NOT_IN, *sorted(ORDERING), Op.IS_EMPTY,
               Op.IS_NOT_EMPTY)
OPERATORS_BY_KIND: dict[str, tuple[str, ...]] = {
    TEXT: _TEXT_OPS,
    NUMBER: _NUMBER_OPS,
    DECIMAL: _NUMBER_OPS,
    BOOLEAN: (Op.EQUALS, Op.NOT_EQUALS, Op.IS_EMPTY, Op.IS_NOT_EMPTY),
    DATETIME: (Op.EQUALS, Op.NOT_EQUALS, *sorted(ORDERING), Op.IS_EMPTY, Op.IS_NOT_EMPTY),
}
# field_values.<name>: any text operator, and gt/lt comparing numbers.
FIELD_VALUES_OPS = (*_TEXT_OPS, *sorted(ORDERING))
TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})


@dataclass
class RuleOutcome:
    passed: bool
    reasons: list[str] = field(default_factory=list)


class _Unusable(Exception):
    """A field value that cannot be compared the rule's way (e.g. "abc" for gt 2)."""


# --- Validation ----------------------------------------------------------------------------


def field_kind(name: str) -> str | None:
    """The kind of a field a rule may name; None for an unknown one (field_values.*: text)."""
    if name in FIELDS:
        return FIELDS[name].kind
    if name.startswith(FIELD_VALUES_PREFIX) and name[len(FIELD_VALUES_PREFIX):].strip():
        return TEXT
    return None


def operators_for(name: str) -> tuple[str, ...]:
    """The operators a rule on this field may use (none for an unknown field)."""
    if name.startswith(FIELD_VALUES_PREFIX) and field_kind(name):
        return FIELD_VALUES_OPS
    kind = field_kind(name)
    return OPERATORS_BY_KIND[kind] if kind else ()


def _label(operator: str) -> str:
    return str(RuleOperator(operator).label) if operator in RuleOperator.values else operator


def validate_rule(field: str, operator: str, value: str) -> None:
    """Raise ValidationError keyed by "field", "operator" and/or "value" when the rule cannot
    be evaluated as written; messages name the allowed choices or the expected format."""
    errors: dict[str, str] = {}
    if field_kind(field) is None:
        errors["field"] = (
            f"Unknown field {field!r}. Choose one of: {', '.join(FIELDS)}, or "
            f"{FIELD_VALUES_PREFIX}<name> for a field value."
        )
    elif operator not in RuleOperator.values:
        errors["operator"] = (
            f"Unknown operator {operator!r}. Choose one of: {', '.join(RuleOperator.values)}."
        )
    elif operator not in operators_for(field):
        allowed = ", ".join(_label(op) for op in operators_for(field))
        kind = "field value" if field.startswith(FIELD_VALUES_PREFIX) else (
            f"{field_kind(field)} field")
        errors["operator"] = (
            f"“{_label(operator)}” does not apply to the {kind} {field}. Use one of: {allowed}."
        )
    else:
        problem = _value_problem(field, operator, value)
        if problem:
            errors["value"] = problem
    if errors:
        raise ValidationError(errors)


def _value_problem(field: str, operator: str, value: str) -> str:
    text = value.strip()
    if operator in NO_VALUE:
        return f"“{_label(operator)}” takes no value: leave the value blank." if text else ""
    if not text:
        return f"Enter a value to compare {field} with."
    items = _split(text) if operator in LISTS else [text]
    if not items:
        return "Enter at least one value (a comma-separated list)."
    kind = field_kind(field)
    if field.startswith(FIELD_VALUES_PREFIX) and operator in ORDERING:
        kind = DECIMAL  # field values are ordered as numbers
    for item in items:
        try:
            _parse(kind or TEXT, item)
        except _Unusable:
            return _format_message(field, kind or TEXT, item, listed=operator in LISTS)
    return ""


def _format_message(field: str, kind: str, item: str, *, listed: bool) -> str:
    what = "each value of the list" if listed else "the value"
    expected = {
        NUMBER: "a whole number, e.g. 2",
        DECIMAL: "a number, e.g. 2.5",
        BOOLEAN: "true or false",
        DATETIME: f"a date and time in ISO 8601, e.g. {DATETIME_EXAMPLE} (or a date, "
        "2026-11-21; without an offset it is UTC)",
    }[kind]
    return f"{field} compares {kind} values: {what} must be {expected} (got {item!r})."


# --- Parsing and reading -------------------------------------------------------------------


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse(kind: str, raw: Any) -> Any:
    """A rule value or field value as a comparable value of `kind`; raises _Unusable."""
    if kind == TEXT:
        return str(raw).strip().casefold()
    if kind in (NUMBER, DECIMAL):
        return _number(raw, whole=kind == NUMBER)
    if kind == BOOLEAN:
        return _boolean(raw)
    return _datetime(raw)


def _number(raw: Any, *, whole: bool) -> Decimal:
    if isinstance(raw, bool):
        raise _Unusable
    try:
        number = Decimal(str(raw).strip())
    except InvalidOperation:
        raise _Unusable from None
    fraction = whole and isinstance(raw, str) and number != number.to_integral()
    if not number.is_finite() or fraction:
        raise _Unusable
    return number


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise _Unusable


def _datetime(raw: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(raw).strip())
    except ValueError:
        raise _Unusable from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict) and not value


def _duration_minutes(data: Mapping[str, Any]) -> Decimal | None:
    if _is_empty(data.get("start")) or _is_empty(data.get("end")):
        return None
    try:
        start, end = _datetime(data.get("start")), _datetime(data.get("end"))
    except _Unusable:
        return None
    return Decimal(int((end - start).total_seconds())) / 60


DERIVED: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "duration_minutes": _duration_minutes,
    "resource_count": lambda data: len(data.get("resources") or []),
}


def field_value(data: Mapping[str, Any], name: str) -> Any:
    """The appointment's value of a rule field (None when it has none)."""
    if name in DERIVED:
        return DERIVED[name](data)
    if name.startswith(FIELD_VALUES_PREFIX):
        values = data.get("field_values")
        return values.get(name[len(FIELD_VALUES_PREFIX):]) if isinstance(values, dict) else None
    return data.get(name)


def _actual_kind(name: str, actual: Any, operator: str) -> str:
    """The kind a field_values value compares as: what it is, numbers for gt/lt."""
    if not name.startswith(FIELD_VALUES_PREFIX):
        return FIELDS[name].kind
    if operator in ORDERING:
        return DECIMAL
    if isinstance(actual, bool):
        return BOOLEAN
    if isinstance(actual, int | float | Decimal):
        return DECIMAL
    return TEXT


# --- Evaluation ----------------------------------------------------------------------------


def _compare(kind: str, operator: str, actual: Any, value: str) -> bool:
    """Whether a non-empty field value satisfies the rule; raises _Unusable."""
    mine = _parse(kind, actual)
    if operator in LISTS:
        found = any(mine == _parse(kind, item) for item in _split(value))
        return found if operator == Op.IN else not found
    theirs = _parse(kind, value)
    checks: dict[str, Callable[[], bool]] = {
        Op.EQUALS: lambda: bool(mine == theirs),
        Op.NOT_EQUALS: lambda: bool(mine != theirs),
        Op.CONTAINS: lambda: theirs in mine,
        Op.NOT_CONTAINS: lambda: theirs not in mine,
        Op.STARTS_WITH: lambda: mine.startswith(theirs),
        Op.ENDS_WITH: lambda: mine.endswith(theirs),
        Op.GREATER_THAN: lambda: bool(mine > theirs),
        Op.GREATER_OR_EQUAL: lambda: bool(mine >= theirs),
        Op.LESS_THAN: lambda: bool(mine < theirs),
        Op.LESS_OR_EQUAL: lambda: bool(mine <= theirs),
    }
    return checks[operator]()


def _shown(value: Any) -> str:
    if _is_empty(value):
        return "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = " ".join(value.split())
        text = text if len(text) <= SHOWN_LIMIT else text[: SHOWN_LIMIT - 1] + "…"
        return repr(text)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def check_rule(rule: OutboundRule, data: Mapping[str, Any]) -> tuple[bool, str]:
    """(passed, reason) for one rule. An invalid rule (saved around the admin) fails."""
    name, operator, value = rule.field.strip(), rule.operator, rule.value
    statement = f"{name} {_label(operator)}{' ' + value.strip() if value.strip() else ''}"
    try:
        validate_rule(name, operator, value)
    except ValidationError as exc:
        problems = "; ".join(str(m) for messages in exc.message_dict.values() for m in messages)
        return False, f"{statement}: no (invalid rule: {problems})"
    actual = field_value(data, name)
    if _is_empty(actual):
        passed = operator == Op.IS_EMPTY or operator in NEGATIVE
        return passed, f"{statement}: {'yes' if passed else 'no'} (empty)"
    if operator in NO_VALUE:
        passed = operator == Op.IS_NOT_EMPTY
        return passed, f"{statement}: {'yes' if passed else 'no'} ({_shown(actual)})"
    kind = _actual_kind(name, actual, operator)
    try:
        passed = _compare(kind, operator, actual, value)
    except _Unusable:
        return False, f"{statement}: no ({_shown(actual)} is not a {kind} value)"
    return passed, f"{statement}: {'yes' if passed else 'no'} ({_shown(actual)})"


def evaluate(resource: Resource, appointment_data: Mapping[str, Any],
             rules: Sequence[OutboundRule] | None = None) -> RuleOutcome:
    """Whether the appointment goes to the resource's Outlook, with one reason per rule.

    `rules`: the resource's saved rules when None (`resource.rules.all()`, so prefetch them
    for many resources); pass unsaved ones to preview. No rules: it passes.
    """
    chosen = list(resource.rules.all()) if rules is None else list(rules)
    if not chosen:
        return RuleOutcome(True, [])
    results = [check_rule(rule, appointment_data) for rule in chosen]
    verdicts = [passed for passed, _ in results]
    passed = any(verdicts) if resource.rule_match == RuleMatch.ANY else all(verdicts)
    return RuleOutcome(passed, [reason for _, reason in results])


def passes(resource: Resource, appointment_data: Mapping[str, Any],
           rules: Sequence[OutboundRule] | None = None) -> bool:
    """evaluate(...).passed."""
    return evaluate(resource, appointment_data, rules).passed
