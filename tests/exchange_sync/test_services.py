"""An administrator's changes re-push the affected appointments: turning a resource's sync on
brings its events, off takes ours away, and turning Exchange sync on pushes everything."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from exchange_sync import services
from exchange_sync.admin_services import resource_sync_set
from exchange_sync.models import ExchangeSettings, PendingSync, Resource

from .outbound_support import accept, appointment, configure_exchange, new_guid, push, resource

pytestmark = pytest.mark.django_db

ANN = "ann@contoso.test"


@pytest.fixture
def ann_unsynced(graph_state, graph_server):
    configure_exchange()
    ann = resource(graph_state, "R1", ANN, sync=False)
    accept("create", appointment(new_guid(), resources=[("R1", ANN)],
                                 start=timezone.now() + timedelta(days=2)))
    return ann


def test_turning_sync_on_pushes_the_resources_appointments_and_off_removes_ours(
        graph_state, ann_unsynced, django_capture_on_commit_callbacks):
    assert not PendingSync.objects.exists()
    with django_capture_on_commit_callbacks() as callbacks:
        assert resource_sync_set(queryset=Resource.objects.all(), enabled=True) == 1
    assert len(callbacks) == 2  # the push doorbell and the subscriptions reconciliation
    assert PendingSync.objects.count() == 1
    push()
    assert len(graph_state.events(ANN)) == 1
    resource_sync_set(queryset=Resource.objects.all(), enabled=False)
    push()
    assert graph_state.events(ANN) == []


def test_a_resource_saved_in_the_admin_is_re_evaluated(graph_state, ann_unsynced, admin_client):
    ann_unsynced.sync_enabled = True
    ann_unsynced.save()
    assert services.resources_changed(resources=[ann_unsynced]) == 1
    push()
    assert len(graph_state.events(ANN)) == 1
    # Nothing changed: re-evaluating writes nothing.
    graph_state.reset_counters()
    services.resources_changed(resources=[ann_unsynced])
    push()
    assert graph_state.request_count == 0


def test_turning_exchange_sync_on_pushes_every_synced_resource(graph_state, ann_unsynced):
    Resource.objects.update(sync_enabled=True)
    ExchangeSettings.objects.update(enabled=False)
    assert services.exchange_settings_changed(
        exchange=ExchangeSettings.load(), was_enabled=True) == 0
    exchange = ExchangeSettings.load()
    exchange.enabled = True
    exchange.save()
    assert services.exchange_settings_changed(exchange=exchange, was_enabled=False) == 1
    push()
    assert len(graph_state.events(ANN)) == 1


def test_nothing_is_queued_while_exchange_sync_is_off(ann_unsynced):
    ExchangeSettings.objects.update(enabled=False)
    assert resource_sync_set(queryset=Resource.objects.all(), enabled=True) == 1
    assert not PendingSync.objects.exists()
