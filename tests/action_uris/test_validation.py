"""Templates are validated when saved (model clean, so the admin and any other writer): known
placeholders only, an absolute http(s) URI, POST fields named once, one default per source app,
source type and URL type (also a database constraint)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from connectors.action_uris import template_errors
from connectors.models import ActionUri

pytestmark = pytest.mark.django_db

KNOWN = (
    "Known placeholders: #SOURCEAPP# #SOURCETYPE# #JOBNO# #TASKNO# #APPOINTMENTID# "
    "#APPOINTMENTGUID# #RESOURCE# #START# #END# #DATABASEACTION#."
)


def errors_of(**values) -> dict[str, list[str]]:
    fields = {"source_app": "BCPROD", "url_type": "appointment",
              "template": "https://bc.example.com/?job=#JOBNO#"}
    fields.update(values)
    with pytest.raises(ValidationError) as caught:
        ActionUri(**fields).full_clean()
    return caught.value.message_dict


def test_an_unknown_placeholder_is_refused_with_the_known_ones():
    assert errors_of(template="https://bc.example.com/?job=#JOBNUMBER#") == {
        "template": [f"Unknown placeholder #JOBNUMBER#. {KNOWN}"]
    }


def test_several_unknown_placeholders_are_named_once_each():
    assert template_errors("https://bc.example.com/#FOO#/#BAR#/#FOO#") == [
        f"Unknown placeholders #FOO#, #BAR#. {KNOWN}"
    ]


def test_a_lower_case_placeholder_gets_its_upper_case_spelling():
    assert template_errors("https://bc.example.com/?job=#jobno#") == [
        "Placeholders are upper case: write #JOBNO#, not #jobno#."
    ]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("https://bc.example.com/?job=#JOBNO", "#JOBNO is missing its closing #: write #JOBNO#."),
        ("https://bc.example.com/?job=JOBNO#", "JOBNO# is missing its opening #: write #JOBNO#."),
        ("https://bc.example.com/#JOBNO#TASKNO#",
         "TASKNO# is missing its opening #: write #TASKNO#."),
    ],
)
def test_half_a_placeholder_is_refused(template, message):
    assert template_errors(template) == [message]


@pytest.mark.parametrize(
    "template",
    [
        "https://bc.example.com/page#top",
        "https://app.example.com/#/jobs/#JOBNO#",
        "https://app.example.com/page#section#TASKNO#",
        "https://bc.example.com/?q=BACKEND#start",
        "https://bc.example.com/#JOBNO##TASKNO#",
        "https://bc.example.com/#",
    ],
)
def test_a_stray_hash_is_a_literal(template):
    assert template_errors(template) == []


@pytest.mark.parametrize(
    ("template", "gives"),
    [
        ("bc.example.com/?job=#JOBNO#", "bc.example.com/?job=J-1001"),
        ("ftp://bc.example.com/#JOBNO#", "ftp://bc.example.com/J-1001"),
        ("#JOBNO#", "J-1001"),
        ("https://#RESOURCE# host/", "https://R1 host/"),
    ],
)
def test_the_template_must_give_an_absolute_http_uri(template, gives):
    assert errors_of(template=template) == {
        "template": [
            "The template must give an absolute http(s) URI (starting with https:// or "
            f"http://); with the sample appointment it gives “{gives}”."
        ]
    }


def test_the_sample_uses_the_templates_own_source_app():
    assert template_errors("https://#SOURCEAPP#.example.com/", source_app="bc-prod") == []
    assert template_errors("https://#SOURCEAPP#.example.com/", source_app="BC PROD") == [
        "The template must give an absolute http(s) URI (starting with https:// or http://); "
        "with the sample appointment it gives “https://BC%20PROD.example.com/”."
    ]


def test_a_post_template_names_each_form_field_once():
    assert errors_of(template="https://bc.example.com/?job=#JOBNO#&job=#TASKNO#&a=1&a=2",
                     request_type="POST") == {
        "template": ["A POST template names each form field once in its query string; given "
                     "more than once: a, job."]
    }
    assert template_errors("https://bc.example.com/?a=1&a=2", request_type="GET") == []


def test_a_blank_template_is_only_required():
    assert errors_of(template="") == {"template": ["This field cannot be blank."]}


def test_source_app_and_type_are_stripped(make_action_uri):
    row = make_action_uri(source_app=" BCPROD ", source_type=" SERVICE ")

    assert (row.source_app, row.source_type) == ("BCPROD", "SERVICE")


def test_a_second_default_is_refused_naming_the_first(make_action_uri):
    first = make_action_uri(is_default=True, description="Open in BC")

    assert errors_of(is_default=True) == {"is_default": [
        f"“Open in BC” (#{first.pk}) is already the default appointment action URI of source "
        "app BCPROD, all source types. Only one may be the default: untick “default” here, or "
        "on that one first."
    ]}


def test_defaults_are_per_source_type_and_url_type(make_action_uri):
    first = make_action_uri(is_default=True, source_type="SERVICE", description="")
    make_action_uri(is_default=True)  # every type
    make_action_uri(is_default=True, url_type="task")
    make_action_uri(is_default=True, source_app="NAVPROD")

    assert errors_of(is_default=True, source_type="SERVICE") == {"is_default": [
        f"“Appointment” (#{first.pk}) is already the default appointment action URI of source "
        "app BCPROD, source type SERVICE. Only one may be the default: untick “default” here, "
        "or on that one first."
    ]}


def test_a_default_may_be_saved_again_and_non_defaults_are_many(make_action_uri):
    default = make_action_uri(is_default=True)
    default.full_clean()
    make_action_uri()
    make_action_uri()

    assert ActionUri.objects.count() == 3


def test_the_database_refuses_a_second_default_too(make_action_uri):
    make_action_uri(is_default=True)
    make_action_uri(is_default=True, source_type="SERVICE")

    with pytest.raises(IntegrityError), transaction.atomic():
        ActionUri.objects.create(source_app="BCPROD", url_type="appointment", is_default=True,
                                 template="https://bc.example.com/")
