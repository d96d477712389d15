"""The data migration 0005: the Support group (view and retry, nothing else), idempotent; and
the resource nos of stored appointments, filled for the search."""

from __future__ import annotations

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group

from connectors.models import AppointmentResource
from tests.connectors.pipeline_factories import AppointmentFactory

from .conftest import support_migration

pytestmark = pytest.mark.django_db

EXPECTED = {
    "connectors.view_dispatch", "connectors.retry_dispatch", "connectors.view_appointment",
    "connectors.view_appointmentevent", "connectors.view_connector",
}


def granted(group: Group) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in group.permissions.values_list("content_type__app_label", "codename")
    }


def test_migrating_creates_the_support_group_with_view_and_retry_only():
    group = Group.objects.get(name="Support")
    assert granted(group) == EXPECTED
    assert not any(p.split(".")[1].startswith(("add_", "change_", "delete_"))
                   for p in granted(group))


def test_running_it_again_changes_nothing_and_keeps_what_an_admin_added():
    group = Group.objects.get(name="Support")
    extra = group.permissions.model.objects.get(codename="view_apiclient")
    group.permissions.add(extra)

    support_migration.create_support_group(django_apps, None)
    support_migration.create_support_group(django_apps, None)

    assert Group.objects.filter(name="Support").count() == 1
    assert granted(group) == EXPECTED | {"connectors.view_apiclient"}


def test_reversing_removes_the_grants_and_an_emptied_group():
    support_migration.remove_support_group(django_apps, None)
    assert not Group.objects.filter(name="Support").exists()
    support_migration.create_support_group(django_apps, None)  # and back
    assert granted(Group.objects.get(name="Support")) == EXPECTED


def test_the_resource_nos_of_stored_appointments_are_filled():
    first = AppointmentFactory(data={"resources": [{"resource_no": "R1"}, {"resource_no": "R2"},
                                                   {"resource_no": "R1"}, {"email": "x@y"}]})
    AppointmentFactory(data={"resources": None})
    AppointmentFactory(data={})

    support_migration.fill_resource_nos(django_apps, None)
    support_migration.fill_resource_nos(django_apps, None)  # idempotent

    assert sorted(AppointmentResource.objects.values_list("appointment_id", "resource_no")) == [
        (first.pk, "R1"), (first.pk, "R2"),
    ]
