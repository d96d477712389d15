"""Which templates apply: per URL type, source app + source type wins over the source app's
templates for every type; the default first, then by id."""

from __future__ import annotations

import pytest

from connectors.action_uris import action_uris_for

pytestmark = pytest.mark.django_db


def described(appointment) -> list[tuple[str, str]]:
    return [(r.url_type, r.description) for r in action_uris_for(appointment, action="update")]


def test_the_source_types_own_template_wins_per_url_type(make_action_uri, make_appointment):
    make_action_uri(url_type="appointment", description="any type")
    make_action_uri(url_type="appointment", source_type="SERVICE", description="service")
    make_action_uri(url_type="task", description="any type task")
    make_action_uri(url_type="map", source_type="PROJECT", description="project map")

    assert described(make_appointment(source_type="SERVICE")) == [
        ("appointment", "service"), ("task", "any type task"),
    ]
    assert described(make_appointment(guid=None, source_type="PROJECT")) == [
        ("appointment", "any type"), ("task", "any type task"), ("map", "project map"),
    ]


def test_an_appointment_without_a_source_type_gets_the_templates_for_every_type(
    make_action_uri, make_appointment
):
    make_action_uri(description="any type")
    make_action_uri(source_type="SERVICE", description="service")

    assert described(make_appointment(source_type="")) == [("appointment", "any type")]


def test_other_source_apps_templates_never_apply(make_action_uri, make_appointment):
    make_action_uri(source_app="NAVPROD")

    assert described(make_appointment()) == []


def test_url_types_come_in_order_and_the_default_first_then_by_id(
    make_action_uri, make_appointment
):
    make_action_uri(url_type="map", description="map")
    make_action_uri(url_type="appointment", description="second")
    make_action_uri(url_type="appointment", description="third")
    make_action_uri(url_type="appointment", description="default", is_default=True)
    make_action_uri(url_type="planning_board", description="board")

    assert described(make_appointment()) == [
        ("planning_board", "board"), ("appointment", "default"), ("appointment", "second"),
        ("appointment", "third"), ("map", "map"),
    ]
