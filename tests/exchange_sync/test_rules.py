"""Outbound rules (exchange_sync/rules.py): every operator on each kind of field, all/any, no
rules, empty fields, field_values.*, derived fields, and the validation messages."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from exchange_sync.models import OutboundRule, Resource
from exchange_sync.rules import FIELDS, RuleOutcome, evaluate, passes, validate_rule


def appointment(**values: Any) -> dict[str, Any]:
    """Appointment.data as the event API carries it (DESIGN.md, API)."""
    data: dict[str, Any] = {
        "guid": "0d4c9c3e-5b7a-4f3e-9a51-2c8f0b6e7d11", "appointment_id": 123,
        "appointment_no": "A-1001", "source_app": "BCPROD", "source_type": "SERVICE",
        "job_no": "J-1", "task_no": "T-1",
        "resources": [{"resource_no": "R1", "email": "ann@example.com"}, {"resource_no": "R2"}],
        "subject": "Boiler service at Smith", "body": "Bring the spare valve.",
        "start": "2026-11-21T09:00:00Z", "end": "2026-11-21T11:30:00Z", "is_all_day": False,
        "category": "Install", "time_marker": "Urgent", "importance": 2, "locked": True,
        "planning_uom": "HOUR", "planning_qty": "2.5", "backoffice_id": "SO-77",
        "field_values": {"Region": "North", "Crew": 3, "Billable": True},
    }
    data.update(values)
    return data


def rule(field: str, operator: str, value: str = "") -> OutboundRule:
    return OutboundRule(field=field, operator=operator, value=value)


def check(field: str, operator: str, value: str = "", **data: Any) -> bool:
    resource = Resource(source_app="BCPROD", resource_no="R1")
    return evaluate(resource, appointment(**data), [rule(field, operator, value)]).passed


def errors_of(field: str, operator: str, value: str = "") -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        validate_rule(field, operator, value)
    return caught.value.message_dict


# --- Text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("equals", "install", True),
        ("equals", "  INSTALL ", True),
        ("equals", "Repair", False),
        ("not_equals", "Repair", True),
        ("not_equals", "install", False),
        ("contains", "STALL", True),
        ("contains", "pair", False),
        ("not_contains", "pair", True),
        ("not_contains", "inst", False),
        ("starts_with", "ins", True),
        ("starts_with", "stall", False),
        ("ends_with", "ALL", True),
        ("ends_with", "inst", False),
        ("in", "Repair, install ,Survey", True),
        ("in", "Repair,Survey", False),
        ("not_in", "Repair, Survey", True),
        ("not_in", "repair,INSTALL", False),
        ("is_empty", "", False),
        ("is_not_empty", "", True),
    ],
)
def test_text_operators_ignore_case(operator, value, expected):
    assert check("category", operator, value) is expected


# --- Numbers and decimals --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("equals", "2", True), ("equals", "2.0", True), ("equals", "3", False),
        ("not_equals", "3", True), ("not_equals", "2", False),
        ("gt", "1", True), ("gt", "2", False),
        ("gte", "2", True), ("gte", "3", False),
        ("lt", "3", True), ("lt", "2", False),
        ("lte", "2", True), ("lte", "1", False),
        ("in", "1, 2, 5", True), ("in", "1,5", False),
        ("not_in", "1,5", True), ("not_in", "2", False),
        ("is_empty", "", False), ("is_not_empty", "", True),
    ],
)
def test_number_operators_compare_numbers(operator, value, expected):
    assert check("importance", operator, value) is expected


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("equals", "2.50", True), ("gt", "2.4", True), ("gt", "10", False),
        ("gte", "2.5", True), ("lt", "10", True), ("lte", "2.49", False),
        ("in", "1.5, 2.5", True), ("not_in", "2.5", False), ("not_equals", "2", True),
    ],
)
def test_decimal_operators_compare_typed_not_as_text(operator, value, expected):
    # "10" > "2.5" as text would be False: the comparison is numeric.
    assert check("planning_qty", operator, value) is expected


def test_a_number_that_is_not_one_fails_with_a_reason():
    resource = Resource(source_app="BCPROD", resource_no="R1")
    outcome = evaluate(resource, appointment(importance="high"), [rule("importance", "gt", "1")])

    assert outcome == RuleOutcome(False, ["importance is greater than 1: no ('high' is not a "
                                          "number value)"])


# --- Booleans --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("equals", "true", True), ("equals", "yes", True), ("equals", "false", False),
        ("not_equals", "false", True), ("not_equals", "TRUE", False),
        ("is_empty", "", False), ("is_not_empty", "", True),
    ],
)
def test_boolean_operators(operator, value, expected):
    assert check("locked", operator, value) is expected


def test_false_is_a_value_not_emptiness():
    assert check("is_all_day", "equals", "false") is True
    assert check("is_all_day", "is_empty") is False


# --- Date and time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("equals", "2026-11-21T09:00:00Z", True),
        ("equals", "2026-11-21T10:00:00+01:00", True),  # the same instant
        ("equals", "2026-11-21T09:00:00", True),  # no offset: UTC
        ("not_equals", "2026-11-21T09:00:00Z", False),
        ("gt", "2026-11-21", True),  # a date: midnight UTC
        ("gt", "2026-11-21T09:00:00Z", False),
        ("gte", "2026-11-21T09:00:00Z", True),
        ("lt", "2026-12-01T00:00:00Z", True),
        ("lt", "2026-11-21T08:59:59Z", False),
        ("lte", "2026-11-21T09:00:00Z", True),
        ("is_empty", "", False), ("is_not_empty", "", True),
    ],
)
def test_datetime_operators_compare_instants(operator, value, expected):
    assert check("start", operator, value) is expected


# --- Empty and missing fields ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("is_empty", "", True), ("is_not_empty", "", False),
        ("not_equals", "x", True), ("not_contains", "x", True), ("not_in", "a,b", True),
        ("equals", "x", False), ("contains", "x", False), ("starts_with", "x", False),
        ("ends_with", "x", False), ("in", "a,b", False),
    ],
)
@pytest.mark.parametrize("empty", [None, "", "   ", "missing"])
def test_an_empty_or_missing_text_field_passes_only_is_empty_and_the_negatives(
    empty, operator, value, expected
):
    data = appointment()
    if empty == "missing":
        del data["time_marker"]
    else:
        data["time_marker"] = empty
    resource = Resource(source_app="BCPROD", resource_no="R1")

    outcome = evaluate(resource, data, [rule("time_marker", operator, value)])

    assert outcome.passed is expected
    assert outcome.reasons[0].endswith("(empty)")


@pytest.mark.parametrize(("operator", "expected"), [("gt", False), ("lte", False),
                                                    ("not_equals", True), ("is_empty", True)])
def test_a_null_planning_qty_is_empty(operator, expected):
    value = "" if operator == "is_empty" else "1"
    assert check("planning_qty", operator, value, planning_qty=None) is expected


# --- field_values.* and derived fields --------------------------------------------------------


def test_field_values_compare_as_text_number_or_boolean_by_their_value():
    assert check("field_values.Region", "equals", "north") is True
    assert check("field_values.Region", "in", "South, NORTH") is True
    assert check("field_values.Crew", "equals", "3.0") is True
    assert check("field_values.Crew", "gt", "2") is True
    assert check("field_values.Crew", "lt", "2") is False
    assert check("field_values.Billable", "equals", "true") is True
    assert check("field_values.Billable", "not_equals", "yes") is False


def test_a_missing_field_value_is_empty():
    assert check("field_values.Colour", "is_empty") is True
    assert check("field_values.Colour", "equals", "red") is False
    assert check("field_values.Colour", "not_equals", "red") is True
    assert check("field_values.Region", "is_empty", field_values=None) is True


def test_a_field_value_gt_on_text_fails_with_a_reason():
    resource = Resource(source_app="BCPROD", resource_no="R1")
    outcome = evaluate(resource, appointment(), [rule("field_values.Region", "gt", "2")])

    assert outcome.reasons == ["field_values.Region is greater than 2: no ('North' is not a "
                               "decimal value)"]


def test_duration_minutes_is_end_minus_start():
    assert check("duration_minutes", "equals", "150") is True
    assert check("duration_minutes", "gt", "120") is True
    assert check("duration_minutes", "lt", "60", end="2026-11-21T09:45:00Z") is True
    assert check("duration_minutes", "is_empty", end=None) is True


def test_resource_count_counts_the_assigned_resources():
    assert check("resource_count", "equals", "2") is True
    assert check("resource_count", "gt", "1", resources=[{"resource_no": "R1"}]) is False
    assert check("resource_count", "equals", "0", resources=None) is True


def test_every_listed_field_can_be_read():
    data = appointment()
    resource = Resource(source_app="BCPROD", resource_no="R1")
    rules = [rule(name, "is_not_empty") for name in FIELDS]

    outcome = evaluate(resource, data, rules)

    assert outcome.passed, outcome.reasons
    assert len(outcome.reasons) == len(FIELDS)


# --- Combining, reasons, saved rules ----------------------------------------------------------


def test_all_needs_every_rule_and_any_needs_one():
    rules = [rule("category", "equals", "Install"), rule("importance", "gt", "5")]
    every = Resource(source_app="BCPROD", resource_no="R1", rule_match="all")
    some = Resource(source_app="BCPROD", resource_no="R1", rule_match="any")

    assert evaluate(every, appointment(), rules) == RuleOutcome(False, [
        "category equals Install: yes ('Install')",
        "importance is greater than 5: no (2)",
    ])
    assert evaluate(some, appointment(), rules).passed is True
    assert passes(some, appointment(category="Repair"), rules) is False


def test_no_rules_passes_with_no_reasons():
    resource = Resource(source_app="BCPROD", resource_no="R1")
    assert evaluate(resource, appointment(), []) == RuleOutcome(True, [])


def test_reasons_show_the_value_compared_shortened():
    long_subject = "x" * 100
    resource = Resource(source_app="BCPROD", resource_no="R1")

    outcome = evaluate(resource, appointment(subject=long_subject, locked=False),
                       [rule("subject", "contains", "y"), rule("locked", "equals", "false"),
                        rule("planning_qty", "gte", "2")])

    assert outcome.reasons[0] == f"subject contains y: no ('{'x' * 59}…')"
    assert outcome.reasons[1] == "locked equals false: yes (false)"
    assert outcome.reasons[2] == "planning_qty is greater than or equal to 2: yes ('2.5')"


@pytest.mark.django_db
def test_saved_rules_are_read_from_the_resource_in_order():
    resource = Resource.objects.create(source_app="BCPROD", resource_no="R1", rule_match="any")
    OutboundRule.objects.create(resource=resource, position=2, field="category",
                                operator="equals", value="Install")
    OutboundRule.objects.create(resource=resource, position=1, field="locked",
                                operator="equals", value="false")

    outcome = evaluate(resource, appointment())

    assert outcome.passed is True
    assert outcome.reasons == ["locked equals false: no (true)",
                               "category equals Install: yes ('Install')"]
    assert passes(resource, appointment(category="Repair")) is False


@pytest.mark.django_db
def test_a_resource_without_saved_rules_passes_everything():
    resource = Resource.objects.create(source_app="BCPROD", resource_no="R1")
    assert passes(resource, {}) is True


def test_an_invalid_saved_rule_fails_instead_of_raising():
    resource = Resource(source_app="BCPROD", resource_no="R1")
    outcome = evaluate(resource, appointment(), [rule("colour", "equals", "red")])

    assert outcome.passed is False
    assert outcome.reasons[0].startswith("colour equals red: no (invalid rule: Unknown field")


# --- Validation ------------------------------------------------------------------------------


def test_valid_rules_raise_nothing():
    for args in [("subject", "contains", "boiler"), ("start", "gte", "2026-11-21T09:00:00Z"),
                 ("importance", "in", "1, 2"), ("locked", "equals", "no"),
                 ("planning_qty", "lt", "2.5"), ("field_values.Region", "equals", "North"),
                 ("field_values.Crew", "gt", "2"), ("end", "is_empty", "")]:
        assert validate_rule(*args) is None


def test_an_unknown_field_names_the_allowed_fields():
    errors = errors_of("colour", "equals", "red")

    assert list(errors) == ["field"]
    assert errors["field"][0].startswith("Unknown field 'colour'. Choose one of: subject, body, "
                                         "category,")
    assert errors["field"][0].endswith(", or field_values.<name> for a field value.")


def test_a_field_value_needs_a_name():
    assert "field" in errors_of("field_values.", "equals", "x")


def test_an_unknown_operator_names_the_operators():
    assert errors_of("subject", "like", "x") == {"operator": [
        "Unknown operator 'like'. Choose one of: equals, not_equals, contains, not_contains, "
        "starts_with, ends_with, in, not_in, gt, gte, lt, lte, is_empty, is_not_empty."
    ]}


def test_gt_on_a_text_field_is_refused_with_the_allowed_operators():
    assert errors_of("subject", "gt", "b") == {"operator": [
        "“is greater than” does not apply to the text field subject. Use one of: equals, "
        "does not equal, contains, does not contain, starts with, ends with, is one of "
        "(comma-separated), is none of (comma-separated), is empty, is not empty."
    ]}


def test_contains_on_a_boolean_is_refused():
    assert "does not apply to the boolean field locked" in errors_of(
        "locked", "contains", "t")["operator"][0]


def test_is_empty_takes_no_value():
    assert errors_of("subject", "is_empty", "x") == {
        "value": ["“is empty” takes no value: leave the value blank."]}


def test_a_missing_value_is_asked_for():
    assert errors_of("subject", "equals", "  ") == {
        "value": ["Enter a value to compare subject with."]}


def test_a_datetime_value_must_be_iso_8601():
    assert errors_of("start", "gt", "tomorrow") == {"value": [
        "start compares datetime values: the value must be a date and time in ISO 8601, e.g. "
        "2026-11-21T09:00:00Z (or a date, 2026-11-21; without an offset it is UTC) "
        "(got 'tomorrow')."
    ]}


def test_number_boolean_and_list_values_are_checked():
    assert errors_of("importance", "equals", "2.5") == {"value": [
        "importance compares number values: the value must be a whole number, e.g. 2 "
        "(got '2.5')."]}
    assert errors_of("planning_qty", "in", "1, two") == {"value": [
        "planning_qty compares decimal values: each value of the list must be a number, "
        "e.g. 2.5 (got 'two')."]}
    assert errors_of("locked", "equals", "maybe") == {"value": [
        "locked compares boolean values: the value must be true or false (got 'maybe')."]}
    assert errors_of("category", "in", " , ") == {"value": [
        "Enter at least one value (a comma-separated list)."]}
    assert errors_of("field_values.Crew", "gt", "many") == {"value": [
        "field_values.Crew compares decimal values: the value must be a number, e.g. 2.5 "
        "(got 'many')."]}
