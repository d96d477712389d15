"""Resources are created and updated from the `resources` of appointment events (API), and an
event queues an Outlook push only when Exchange sync is on and a resource of it syncs."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from connectors.services import api_client_create
from exchange_sync.models import EventLink, PendingSync, Resource

from .outbound_support import appointment, configure_exchange, new_guid

pytestmark = pytest.mark.django_db

EVENTS_URL = "/api/v1/appointments/events/"


@pytest.fixture(autouse=True)
def _throttle_cache(settings):
    settings.CACHES = {**settings.CACHES, "throttle": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "exchange"}}
    caches["throttle"].clear()


@pytest.fixture
def post(client):
    _, key = api_client_create(name="Business Central", source_apps=["BCPROD"])

    def post(action, data, event_id=None):
        body = {"event_id": event_id or new_guid(), "action": action,
                "occurred_at": "2026-11-21T09:00:00Z", "appointment": data}
        response = client.post(EVENTS_URL, body, content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {key}")
        assert response.status_code == 202, response.content
        return response

    return post


def test_new_resources_are_created_with_sync_off(post):
    post("create", appointment(new_guid(), resources=[("R1", "ann@contoso.test"),
                                                      ("R2", "")]))
    resources = {r.resource_no: r for r in Resource.objects.all()}
    assert set(resources) == {"R1", "R2"}
    assert resources["R1"].email == "ann@contoso.test" and resources["R2"].email == ""
    assert not any(r.sync_enabled for r in resources.values())
    assert all(r.source_app == "BCPROD" for r in resources.values())
    assert not PendingSync.objects.exists()


def test_a_changed_email_is_taken_a_blank_one_never_clears(post):
    Resource.objects.create(source_app="BCPROD", resource_no="R1", email="old@contoso.test",
                            name="Ann", sync_enabled=True, graph_user_id="abc")
    post("create", appointment(new_guid(), resources=[("R1", "")]))
    assert Resource.objects.get().email == "old@contoso.test"
    post("create", appointment(new_guid(), resources=[("R1", "ann@contoso.test")]))
    resource = Resource.objects.get()
    assert (resource.email, resource.name, resource.sync_enabled) == (
        "ann@contoso.test", "Ann", True)
    assert resource.graph_user_id == ""  # another mailbox: looked up again


def test_an_event_queues_a_push_only_when_sync_is_on(post, graph_server):
    Resource.objects.create(source_app="BCPROD", resource_no="R1", email="ann@contoso.test",
                            sync_enabled=True)
    post("create", appointment(new_guid(), resources=[("R1", "ann@contoso.test")]))
    assert not PendingSync.objects.exists()  # Exchange sync itself is off
    configure_exchange()
    guid = new_guid()
    post("create", appointment(guid, resources=[("R1", "ann@contoso.test")]))
    assert PendingSync.objects.get().appointment.guid.hex == guid.replace("-", "")


def test_a_resource_taken_off_still_queues_the_appointment_with_events(post, graph_server):
    configure_exchange()
    Resource.objects.create(source_app="BCPROD", resource_no="R1", email="ann@contoso.test",
                            sync_enabled=True)
    guid = new_guid()
    post("create", appointment(guid, resources=[("R1", "ann@contoso.test")]))
    link = EventLink.objects.create(appointment=PendingSync.objects.get().appointment,
                                    resource=Resource.objects.get(), event_id="AAMk1")
    PendingSync.objects.all().delete()
    post("update", appointment(guid, resources=[("R7", "")]), event_id="second")
    assert PendingSync.objects.get().appointment_id == link.appointment_id
