"""Rendering: every placeholder, URL-encoding of awkward values, dates in UTC, the database
action, the first resource, and POST templates' form fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.action_uris import action_uris_for, render_template, sample_values
from tests.connectors.pipeline_factories import EventFactory

from .conftest import GUID

pytestmark = pytest.mark.django_db

EVERY_PLACEHOLDER = (
    "https://bo.example.com/open?app=#SOURCEAPP#&type=#SOURCETYPE#&job=#JOBNO#&task=#TASKNO#"
    "&id=#APPOINTMENTID#&guid=#APPOINTMENTGUID#&res=#RESOURCE#&start=#START#&end=#END#"
    "&action=#DATABASEACTION#"
)


def at(hour: int) -> datetime:
    return datetime(2026, 11, 20, hour, tzinfo=UTC)


def only_uri(appointment, **kwargs):
    (rendered,) = action_uris_for(appointment, **kwargs)
    return rendered


def test_it_fills_in_every_placeholder(make_action_uri, make_appointment):
    make_action_uri(template=EVERY_PLACEHOLDER)
    appointment = make_appointment(task_no="T-7")
    EventFactory(appointment=appointment, action="update")

    assert only_uri(appointment).uri == (
        "https://bo.example.com/open?app=BCPROD&type=SERVICE&job=J-1&task=T-7&id=123"
        f"&guid={GUID}&res=R1&start=2026-11-21T09%3A00%3A00Z&end=2026-11-21T11%3A00%3A00Z"
        "&action=E"
    )


def test_it_url_encodes_spaces_ampersands_hashes_slashes_and_non_ascii(
    make_action_uri, make_appointment
):
    make_action_uri(template="https://bo.example.com/jobs/#JOBNO#/tasks/#TASKNO#?r=#RESOURCE#")
    appointment = make_appointment(
        job_no="J 1&2#3", task_no="Müller/Ærø",
        data={"resources": [{"resource_no": "R 1+%"}]},
    )

    assert only_uri(appointment, action="create").uri == (
        "https://bo.example.com/jobs/J%201%262%233/tasks/M%C3%BCller%2F%C3%86r%C3%B8?r=R%201%2B%25"
    )


def test_times_are_iso_8601_in_utc_whatever_offset_was_stored(make_action_uri, make_appointment):
    make_action_uri(template="https://bo.example.com/?from=#START#&to=#END#")
    appointment = make_appointment(
        data={"start": "2026-11-21T10:00:00+01:00", "end": "2026-11-21T11:30:00.250000Z"}
    )

    assert only_uri(appointment, action="update").uri == (
        "https://bo.example.com/?from=2026-11-21T09%3A00%3A00Z"
        "&to=2026-11-21T11%3A30%3A00.250000Z"
    )


def test_missing_values_render_empty(make_action_uri, make_appointment):
    make_action_uri(template="https://bo.example.com/?id=#APPOINTMENTID#&r=#RESOURCE#&s=#START#")
    appointment = make_appointment(
        appointment_id=None, data={"resources": [], "start": None}
    )

    assert only_uri(appointment, action="delete").uri == "https://bo.example.com/?id=&r=&s="


@pytest.mark.parametrize(("action", "letter"), [("create", "A"), ("update", "E"),
                                                ("delete", "D")])
def test_the_database_action_is_a_e_or_d(make_action_uri, make_appointment, action, letter):
    make_action_uri(template="https://bo.example.com/?a=#DATABASEACTION#")
    appointment = make_appointment()

    assert only_uri(appointment, action=action).uri == f"https://bo.example.com/?a={letter}"


def test_without_an_action_the_latest_applied_event_decides(make_action_uri, make_appointment):
    make_action_uri(template="https://bo.example.com/?a=#DATABASEACTION#")
    appointment = make_appointment()
    assert only_uri(appointment).uri.endswith("?a=E")  # no event stored: an existing one

    EventFactory(appointment=appointment, action="create", occurred_at=at(9))
    assert only_uri(appointment).uri.endswith("?a=A")

    EventFactory(appointment=appointment, action="delete", occurred_at=at(11))
    EventFactory(appointment=appointment, action="update", occurred_at=at(10))  # arrived late
    EventFactory(appointment=appointment, action="update", occurred_at=at(12), stale=True)
    assert only_uri(appointment).uri.endswith("?a=D")


def test_an_unknown_action_is_refused(make_appointment):
    with pytest.raises(ValueError, match="Unknown action 'move'"):
        action_uris_for(make_appointment(), action="move")


def test_a_literal_hash_stays_a_fragment(make_action_uri, make_appointment):
    make_action_uri(template="https://app.example.com/#/jobs/#JOBNO#")
    make_action_uri(template="https://app.example.com/page#top#TASKNO#", url_type="task")

    uris = [item.uri for item in action_uris_for(make_appointment(), action="update")]

    assert uris == ["https://app.example.com/#/jobs/J-1", "https://app.example.com/page#topT-1"]


def test_a_post_template_sends_its_query_string_as_form_fields(make_action_uri, make_appointment):
    make_action_uri(
        template="https://bo.example.com/Page/Job?company=CRONUS%20Intl&job=#JOBNO#&task=#TASKNO#"
        "&start=#START#&empty=",
        request_type="POST",
    )
    appointment = make_appointment(job_no="J 1&2#3", task_no="Müller/Ærø")

    rendered = only_uri(appointment, action="update")

    assert rendered.request_type == "POST"
    assert rendered.uri == "https://bo.example.com/Page/Job"
    assert rendered.form_fields == {
        "company": "CRONUS Intl", "job": "J 1&2#3", "task": "Müller/Ærø",
        "start": "2026-11-21T09:00:00Z", "empty": "",
    }


def test_a_get_template_has_no_form_fields(make_action_uri, make_appointment):
    make_action_uri()

    rendered = only_uri(make_appointment(), action="update")

    assert (rendered.request_type, rendered.form_fields) == ("GET", {})
    assert (rendered.url_type, rendered.url_type_label) == ("appointment", "Appointment")
    assert (rendered.description, rendered.is_default) == ("Open job", False)


def test_a_blank_description_reads_as_the_url_type(make_action_uri, make_appointment):
    make_action_uri(description="", url_type="planning_board")

    assert only_uri(make_appointment(), action="update").description == "Planning board"


def test_the_sample_takes_the_templates_source_app_and_type():
    values = sample_values(source_app="NAV 2018", source_type="")

    assert render_template("https://x.example/#SOURCEAPP#/#SOURCETYPE#/#JOBNO#", values) == (
        "https://x.example/NAV%202018//J-1001"
    )
