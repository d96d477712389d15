"""The event API's fast path (connectors/api/fastpath.py) agrees with EventSerializer.

Whatever the fast path accepts, the serializer accepts with exactly the same validated data
(and the same stored JSON, key order included); what it does not accept goes to the
serializer, so every error message stays the serializer's. Checked on events generated from
a valid one with fields replaced by valid, borderline and invalid values.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.api.fastpath import NOT_PLAIN, validated_event, validated_events
from connectors.api.serializers import EventSerializer

from .conftest import EVENTS_URL, assert_error, event, post_json

TEXTS = ["", " ", "  x  ", "x", "A-1", "x" * 10, "x" * 11, "x" * 20, "x" * 21, "x" * 30,
         "x" * 31, "x" * 50, "x" * 51, "x" * 200, " " + "x" * 200, "x" * 201, "x" * 250,
         "x" * 251, "nul\x00", "lone \ud800", "ü ß 日本", "tab\tnew\nline"]
SCALARS = [None, 0, 1, -1, 2.5, 5.0, True, False, [], {}, ["x"], {"a": 1}, "5", "5.0",
           "true", "null"]
TIMES = ["2026-11-21T09:00:00Z", "2026-11-21T09:00:00+01:00", " 2026-11-21T10:00:00Z ",
         "2026-11-21T09:00:00", "2026-11-21", "not a time", "0001-01-01T00:30:00+01:00",
         "2026-11-21T08:00:00.123456-05:00", "x" * 65]
UUIDS = ["6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "6F1C2A34-5B6D-4E7F-8A9B-0C1D2E3F4A5B",
         "{6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b}", "6f1c2a345b6d4e7f8a9b0c1d2e3f4a5b",
         " 6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b ", "not-a-uuid", "x" * 65]
NUMBERS = [0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, 1.0, 1.5]
DECIMALS = ["2.5", 2.5, 3, "0", "-0.000", "1e3", "1234567890123", "0.1234567", "NaN", "abc",
            float("inf"), "  7  "]
EMAILS = ["ann@example.com", " ann@example.com ", "", "  ", "not an email", "a@b",
          "x" * 250 + "@example.com", "ann@exämple.com"]
RESOURCES = [
    [], [{"resource_no": "R1"}], [{"resource_no": " R1 ", "email": "ann@example.com"}],
    [{"resource_no": "R1", "email": None}], [{"resource_no": "", "email": "a@example.com"}],
    [{"email": "a@example.com"}], ["R1"], [{"resource_no": 7}], [{"resource_no": "x" * 51}],
    [{"resource_no": "R1", "extra": 1}], [{"resource_no": "R1"}] * 201, "R1", {"R1": 1},
]
JSON_OBJECTS = [{}, {"a": [1, {"b": None}]}, {"nul": "\x00"}, [], "x", {"n": float("nan")}]

APPOINTMENT_VALUES: dict[str, list[Any]] = {
    "guid": UUIDS, "appointment_id": NUMBERS, "importance": NUMBERS,
    "appointment_no": TEXTS, "source_app": TEXTS, "source_type": TEXTS, "job_no": TEXTS,
    "task_no": TEXTS, "subject": TEXTS, "body": TEXTS, "category": TEXTS,
    "time_marker": TEXTS, "planning_uom": TEXTS, "backoffice_id": TEXTS,
    "start": TIMES, "end": TIMES, "is_all_day": [True, False], "locked": [True, False],
    "planning_qty": DECIMALS, "resources": RESOURCES, "field_values": JSON_OBJECTS,
}
EVENT_VALUES: dict[str, list[Any]] = {
    "event_id": TEXTS, "action": ["create", "update", "delete", "Create", "remove", ""],
    "occurred_at": TIMES,
}
ABSENT = object()


@st.composite
def changes(draw: Any, values: dict[str, list[Any]]) -> dict[str, Any]:
    """Up to three keys replaced by one of their own values or any scalar, or removed."""
    keys = draw(st.lists(st.sampled_from(sorted(values)), max_size=3, unique=True))
    return {key: draw(st.sampled_from([*values[key], *SCALARS, ABSENT])) for key in keys}


def apply(target: dict[str, Any], change: dict[str, Any]) -> None:
    for key, value in change.items():
        if value is ABSENT:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)


def serializer_result(data: Any) -> Any:
    serializer = EventSerializer(data=data)
    return serializer.validated_data if serializer.is_valid() else NOT_PLAIN


def agree(data: dict[str, Any]) -> bool:
    """Asserts the fast path's result, when it has one, is the serializer's; returns whether
    the fast path took the event."""
    fast = validated_event(copy.deepcopy(data))
    if fast is NOT_PLAIN:
        return False
    slow = serializer_result(copy.deepcopy(data))
    assert slow is not NOT_PLAIN, data
    assert fast == dict(slow), data
    assert json.dumps(fast["appointment"]) == json.dumps(slow["appointment"])  # key order
    return True


def test_every_single_field_value_is_judged_alike():
    """Each key of the event and its appointment replaced, one at a time, by each candidate
    (the length limits' boundaries included) or removed."""
    taken = 0
    for values, inner in ((EVENT_VALUES, False), (APPOINTMENT_VALUES, True)):
        for key, options in values.items():
            for value in [*options, *SCALARS, ABSENT]:
                data = event()
                apply(data["appointment"] if inner else data, {key: value})
                taken += agree(data)
    assert taken >= 200


def test_combined_changes_are_judged_alike():
    fast_taken: list[bool] = []

    @settings(max_examples=1000, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(event_change=changes(EVENT_VALUES), appointment_change=changes(APPOINTMENT_VALUES))
    def check(event_change: dict[str, Any], appointment_change: dict[str, Any]) -> None:
        data = event()
        apply(data, event_change)
        apply(data["appointment"], appointment_change)
        fast_taken.append(agree(data))

    check()
    assert sum(fast_taken) >= 100  # the comparison ran on many accepted events, not a few


@pytest.mark.parametrize("data", [
    event(),
    event(action="delete", start=None, end=None, resources=None, field_values=None),
    event(subject="  kept as sent  ", planning_qty=2, importance=-3,
          resources=[{"resource_no": " R2 ", "email": ""}, {"resource_no": "R3"}]),
    {**event(), "unknown": "ignored, as the serializer does"},
])
def test_well_formed_events_take_the_fast_path(data):
    fast = validated_event(copy.deepcopy(data))
    assert fast is not NOT_PLAIN
    assert fast == dict(serializer_result(copy.deepcopy(data)))


def test_one_event_that_is_not_plain_sends_the_whole_request_to_the_serializer():
    assert validated_events([event(), event(importance="5")]) is None
    assert validated_events([event(), event()]) is not None


def test_an_event_the_fast_path_declines_is_still_accepted_when_valid(client, api_key):
    body = [event(event_id="e1"), event(event_id="e2", appointment_id="123", locked="true")]
    response = post_json(client, EVENTS_URL, body, key=api_key)
    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == 2


@pytest.mark.django_db
def test_errors_are_the_serializers_own(client, api_key):
    body = [event(event_id="e1"), event(event_id="e2", end="2026-11-21T08:00:00Z")]
    error = assert_error(post_json(client, EVENTS_URL, body, key=api_key), 400, "invalid")
    assert error["fields"] == {"1.appointment.end": ["End must not be before start."]}
