"""/dispatches/<id>/: the appointment's Exchange sync log (newest first), read only when the
appointment has one."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.utils import timezone

from exchange_sync.models import Resource, SyncLogEntry
from tests.connectors.pipeline_factories import DispatchFactory

pytestmark = pytest.mark.django_db


def sync_log_section(client, dispatch) -> str:
    response = client.get(f"/dispatches/{dispatch.pk}/")
    assert response.status_code == 200
    text = html.unescape(response.content.decode())
    start = text.index('id="sync-log"')
    return text[start:text.index('<div class="module"', start)]


def test_it_shows_the_sync_log_of_the_appointment_newest_first(support_client):
    dispatch = DispatchFactory()
    resource = Resource.objects.create(source_app="BCPROD", resource_no="R1", name="Ann")
    older = SyncLogEntry.objects.create(
        direction="inbound", kind="conflict", resource=resource,
        appointment=dispatch.appointment, message="Conflict: the Outlook change is newer.",
        hint="Nothing to do.")
    SyncLogEntry.objects.filter(pk=older.pk).update(at=timezone.now() - timedelta(minutes=5))
    SyncLogEntry.objects.create(
        direction="outbound", kind="updated", resource=resource,
        appointment=dispatch.appointment, message="Updated the Outlook event.")
    SyncLogEntry.objects.create(direction="inbound", kind="created",
                                message="Another appointment's entry.")

    section = sync_log_section(support_client, dispatch)

    assert section.index("Updated the Outlook event.") < section.index("Conflict: the Outlook")
    assert "Planner → Outlook" in section and "Outlook → planner" in section
    assert "Conflict</td>" in section and "Nothing to do." in section
    assert "BCPROD/R1 (Ann)" in section
    assert "Another appointment's entry." not in section


def test_an_appointment_without_sync_log_says_so_without_another_query(
        support_client, django_assert_max_num_queries):
    dispatch = DispatchFactory()
    assert "None: this appointment has not been synced" in sync_log_section(
        support_client, dispatch)
    with django_assert_max_num_queries(8):
        support_client.get(f"/dispatches/{dispatch.pk}/")
