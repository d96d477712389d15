"""Admin: the action URI changelist and forms, the preview before saving, the page that sends a
POST action URI, and the action URIs on an appointment's admin page."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from connectors.models import ActionUri

from .conftest import GUID

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:connectors_actionuri_changelist")
ADD = reverse("admin:connectors_actionuri_add")
PREVIEW = reverse("admin:connectors_actionuri_preview")


def form_data(**values: Any) -> dict[str, Any]:
    data = {
        "source_app": "BCPROD", "source_type": "", "url_type": "appointment",
        "description": "Open job", "template": "https://bc.example.com/?job=#JOBNO#",
        "request_type": "GET", "preview_appointment": "",
    }
    data.update(values)
    return data


def user_client(*codenames: str) -> Client:
    user = User.objects.create_user("-".join(("user", *codenames)), password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def errors_in(response) -> list[str]:
    return [str(e) for errors in response.context["adminform"].form.errors.values()
            for e in errors]


def open_url(action_uri, appointment) -> str:
    return reverse("admin:connectors_actionuri_open", args=[action_uri.pk, appointment.pk])


# --- Changelist and forms ---------------------------------------------------------------------


def test_the_changelist_renders_with_its_filters_and_a_search(admin_client, make_action_uri):
    kept = make_action_uri(description="Open in BC", source_type="SERVICE")
    make_action_uri(source_app="NAVPROD", url_type="map", request_type="POST")

    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert "(all types)" in response.content.decode()
    filtered = admin_client.get(CHANGELIST, {"source_app": "BCPROD", "url_type__exact":
                                             "appointment", "q": "Open in"})
    assert list(filtered.context["cl"].result_list) == [kept]


def test_the_add_form_lists_the_placeholders_and_has_a_preview_button(admin_client,
                                                                      make_appointment):
    make_appointment()

    content = admin_client.get(ADD).content.decode()

    assert "#APPOINTMENTGUID#" in content and "#DATABASEACTION#" in content
    assert f'formaction="{PREVIEW}"' in content and 'name="_preview"' in content
    assert f'<option value="{GUID}">' in content
    assert "connectors/action_uri_form.js" in content


def test_adding_a_valid_action_uri_saves_it(admin_client):
    response = admin_client.post(ADD, form_data(is_default="on"))

    assert response.status_code == 302, errors_in(response)
    row = ActionUri.objects.get()
    assert (row.template, row.is_default, row.request_type) == (
        "https://bc.example.com/?job=#JOBNO#", True, "GET"
    )


def test_the_add_form_shows_template_errors(admin_client):
    response = admin_client.post(ADD, form_data(template="https://bc.example.com/?job=#JOB#"))

    assert response.status_code == 200
    assert errors_in(response) == [
        "Unknown placeholder #JOB#. Known placeholders: #SOURCEAPP# #SOURCETYPE# #JOBNO# "
        "#TASKNO# #APPOINTMENTID# #APPOINTMENTGUID# #RESOURCE# #START# #END# #DATABASEACTION#."
    ]
    assert not ActionUri.objects.exists()


def test_the_add_form_refuses_a_second_default(admin_client, make_action_uri):
    first = make_action_uri(is_default=True)

    response = admin_client.post(ADD, form_data(is_default="on"))

    assert errors_in(response) == [
        f"“Open job” (#{first.pk}) is already the default appointment action URI of source app "
        "BCPROD, all source types. Only one may be the default: untick “default” here, or on "
        "that one first."
    ]


def test_the_change_form_renders_and_saves(admin_client, make_action_uri, make_appointment):
    row = make_action_uri(source_type="SERVICE")
    make_appointment()
    url = reverse("admin:connectors_actionuri_change", args=[row.pk])

    response = admin_client.get(url)
    assert response.status_code == 200
    assert f'<option value="{GUID}">' in response.content.decode()

    response = admin_client.post(url, form_data(source_type="SERVICE", description="Renamed"))
    assert response.status_code == 302, errors_in(response)
    row.refresh_from_db()
    assert row.description == "Renamed"


def test_the_delete_page_renders(admin_client, make_action_uri):
    row = make_action_uri()

    response = admin_client.get(reverse("admin:connectors_actionuri_delete", args=[row.pk]))

    assert response.status_code == 200


# --- Preview ----------------------------------------------------------------------------------


def test_the_preview_renders_the_unsaved_template_for_the_sample(admin_client):
    response = admin_client.post(PREVIEW, form_data(
        source_type="SERVICE", template="https://bc.example.com/#SOURCEAPP#/#SOURCETYPE#/"
        "#JOBNO#?s=#START#",
    ))

    assert response.status_code == 200
    assert re.search(r'<code id="preview-uri">(.*?)</code>', response.content.decode()).group(1) \
        == "https://bc.example.com/BCPROD/SERVICE/J-1001?s=2026-11-21T09%3A00%3A00Z"
    assert "built-in sample" in response.content.decode()
    assert not ActionUri.objects.exists()


def test_the_preview_renders_for_a_stored_appointment_by_guid_or_number(
    admin_client, make_appointment
):
    appointment = make_appointment(job_no="Müller & Co", appointment_no="SO-9")
    for reference in (GUID, "SO-9"):
        response = admin_client.post(PREVIEW, form_data(preview_appointment=reference),
                                     headers={"Accept": "application/json"})

        assert response.json() == {
            "ok": True, "errors": [], "appointment": str(appointment),
            "uri": "https://bc.example.com/?job=M%C3%BCller%20%26%20Co",
            "request_type": "GET", "form_fields": {},
        }


def test_the_preview_shows_post_form_fields(admin_client):
    response = admin_client.post(PREVIEW, form_data(
        request_type="POST", template="https://bc.example.com/job?job=#JOBNO#&res=#RESOURCE#",
    ))

    content = response.content.decode()
    assert '<code id="preview-uri">https://bc.example.com/job</code>' in content
    assert "<td><code>job</code></td><td><code>J-1001</code></td>" in content
    assert "<td><code>res</code></td><td><code>R1</code></td>" in content


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        ({"template": "https://bc.example.com/#NOPE#"},
         ["Unknown placeholder #NOPE#. Known placeholders: #SOURCEAPP# #SOURCETYPE# #JOBNO# "
          "#TASKNO# #APPOINTMENTID# #APPOINTMENTGUID# #RESOURCE# #START# #END# "
          "#DATABASEACTION#."]),
        ({"template": ""}, ["Enter a template to preview."]),
        ({"preview_appointment": "SO-404"},
         ["No stored appointment has the GUID or appointment no “SO-404”."]),
        ({"preview_appointment": GUID, "source_app": "NAVPROD"},
         [f"Appointment “{GUID}” belongs to source app BCPROD, not NAVPROD: pick one of "
          "NAVPROD, or leave it blank for the sample."]),
    ],
)
def test_the_preview_explains_what_stops_it(admin_client, make_appointment, values, errors):
    make_appointment()

    as_json = admin_client.post(PREVIEW, form_data(**values),
                                headers={"Accept": "application/json"}).json()
    page = admin_client.post(PREVIEW, form_data(**values))

    assert (as_json["ok"], as_json["errors"]) == (False, errors)
    assert page.status_code == 200
    assert page.context["preview"].errors == errors
    assert 'id="preview-errors"' in page.content.decode()


def test_the_preview_is_post_only_and_needs_add_or_change_permission(admin_client):
    assert admin_client.get(PREVIEW).status_code == 405
    assert user_client("view_actionuri").post(PREVIEW, form_data()).status_code == 403
    assert user_client("change_actionuri").post(PREVIEW, form_data()).status_code == 200
    assert Client().post(PREVIEW, form_data()).status_code == 302  # to the login page


# --- Opening an action URI of an appointment --------------------------------------------------


def test_a_post_action_uri_opens_as_a_form_without_our_csrf_token(
    admin_client, make_action_uri, make_appointment
):
    row = make_action_uri(request_type="POST", template="https://bc.example.com/job?job=#JOBNO#"
                          "&a=#DATABASEACTION#")
    appointment = make_appointment(job_no='J "1"')

    response = admin_client.get(open_url(row, appointment), {"action": "create"})

    content = response.content.decode()
    assert response.status_code == 200
    assert '<form method="post" action="https://bc.example.com/job" id="action-uri-form">' \
        in content
    assert '<input type="hidden" name="job" value="J &quot;1&quot;">' in content
    assert '<input type="hidden" name="a" value="A">' in content
    form = content.split('id="action-uri-form"')[1].split("</form>")[0]
    assert "csrfmiddlewaretoken" not in form


def test_a_get_action_uri_opens_as_a_link(admin_client, make_action_uri, make_appointment):
    row = make_action_uri()
    appointment = make_appointment()

    response = admin_client.get(open_url(row, appointment), {"action": "bogus"})

    assert 'href="https://bc.example.com/open?job=J-1"' in response.content.decode()


def test_opening_needs_a_view_permission_on_appointments_or_dispatches(
    make_action_uri, make_appointment
):
    url = open_url(make_action_uri(), make_appointment())

    assert user_client("view_actionuri").get(url).status_code == 403
    assert user_client("view_dispatch").get(url).status_code == 200


def test_opening_an_unknown_action_uri_is_a_404(admin_client, make_appointment):
    appointment = make_appointment()

    response = admin_client.get(
        reverse("admin:connectors_actionuri_open", args=[999, appointment.pk])
    )

    assert response.status_code == 404


# --- The appointment's admin page -------------------------------------------------------------


def test_the_appointment_page_shows_its_action_uris_as_links(
    admin_client, make_action_uri, make_appointment
):
    make_action_uri(is_default=True)
    post = make_action_uri(url_type="task", description="Send task", request_type="POST",
                           template="https://bc.example.com/task?task=#TASKNO#")
    appointment = make_appointment()

    response = admin_client.get(
        reverse("admin:connectors_appointment_change", args=[appointment.pk])
    )

    content = response.content.decode()
    assert response.status_code == 200
    assert '<a href="https://bc.example.com/open?job=J-1" target="_blank" ' \
        'rel="noopener noreferrer">Open job</a>' in content
    assert f'<a href="{open_url(post, appointment)}" target="_blank" rel="noopener">' \
        'Send task</a> <small>POST</small>' in content


def test_the_appointment_page_says_when_there_are_none(admin_client, make_appointment):
    appointment = make_appointment()

    response = admin_client.get(
        reverse("admin:connectors_appointment_change", args=[appointment.pk])
    )

    assert "No action URIs for source app BCPROD, source type SERVICE." in \
        response.content.decode()
