"""`manage.py sync_exchange [--resource R] [--full]` against the fake Graph."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from exchange_sync.models import EventLink, ExchangeSettings, Resource
from exchange_sync.models.sync import EXTENDED_PROPERTY_ID

from .outbound_support import accept, appointment, configure_exchange, new_guid, resource

pytestmark = pytest.mark.django_db

ANN, BOB = "ann@contoso.test", "bob@contoso.test"


def soon(days: float = 1):
    return timezone.now() + timedelta(days=days)


def run(*args: str) -> str:
    out = StringIO()
    call_command("sync_exchange", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def mailboxes(graph_state, graph_server):
    """Two resources whose appointments were accepted while Exchange sync was still off."""
    ann = resource(graph_state, "R1", ANN)
    bob = resource(graph_state, "R2", BOB)
    for number in range(3):
        accept("create", appointment(new_guid(), resources=[("R1", ANN)],
                                     start=soon(number + 1)))
    accept("create", appointment(new_guid(), resources=[("R2", BOB)], start=soon(2)))
    accept("create", appointment(new_guid(), resources=[("R2", BOB)], start=soon(400)))
    configure_exchange()
    return ann, bob


def test_it_pushes_everything_that_qualifies_with_a_summary(graph_state, mailboxes):
    output = run()
    assert len(graph_state.events(ANN)) == 3
    assert len(graph_state.events(BOB)) == 1  # the one 400 days ahead is outside the window
    assert "Pushing to Outlook [" in output
    assert "4 appointment(s) checked; 4 appointment(s): 4 created" in output
    again = run()
    assert "0 created, 0 updated, 0 deleted" in again


def test_one_resource_is_reconciled_alone(graph_state, mailboxes):
    run("--resource", "R2")
    assert graph_state.events(ANN) == [] and len(graph_state.events(BOB)) == 1


def test_a_resource_no_longer_synced_loses_our_events(graph_state, mailboxes):
    run()
    Resource.objects.filter(resource_no="R1").update(sync_enabled=False)
    output = run("--resource", "R1")
    assert graph_state.events(ANN) == []
    assert "3 deleted" in output


def test_full_adopts_our_events_whose_links_were_lost_and_deletes_orphans(
        graph_state, mailboxes):
    run()
    kept = EventLink.objects.filter(resource__resource_no="R1").order_by("pk").first()
    assert kept is not None
    # A database restored from before the push: the links are gone, the events are not.
    EventLink.objects.update(event_id="", change_key="", content_hash="")
    # And an event of ours whose appointment no longer exists at all.
    graph_state.outlook_create(ANN, subject="Old", start={"dateTime": soon(3).strftime(
        "%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}, end={"dateTime": soon(3.1).strftime(
        "%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}, singleValueExtendedProperties=[
        {"id": EXTENDED_PROPERTY_ID, "value": new_guid()}])
    own = graph_state.outlook_create(ANN, subject="Lunch", start={"dateTime": soon(3).strftime(
        "%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}, end={"dateTime": soon(3.1).strftime(
        "%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"})
    output = run("--full")
    assert "3 re-linked, 1 orphan(s) deleted" in output
    subjects = sorted(e["subject"] for e in graph_state.events(ANN))
    assert subjects == ["Install boiler"] * 3 + ["Lunch"]
    assert own["id"] in {e["id"] for e in graph_state.events(ANN)}
    assert len(graph_state.events(BOB)) == 1


def test_full_recreates_events_deleted_from_the_mailbox(graph_state, mailboxes):
    run()
    victim = graph_state.events(ANN)[0]
    graph_state.outlook_delete(ANN, victim["id"])
    output = run("--full")
    assert "1 missing" in output
    assert len(graph_state.events(ANN)) == 3


@pytest.mark.parametrize(("args", "message"), [
    (("--resource", "NOPE"), "No resource 'NOPE'"),
    (("--source-app", "BCPROD"), "--source-app only goes with --resource"),
])
def test_bad_input_names_the_problem(mailboxes, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_an_ambiguous_resource_needs_its_source_app(graph_state, mailboxes):
    Resource.objects.create(source_app="OTHER", resource_no="R1", email=ANN)
    with pytest.raises(CommandError, match="exists in source apps BCPROD, OTHER"):
        run("--resource", "R1")
    run("--resource", "R1", "--source-app", "BCPROD")
    assert len(graph_state.events(ANN)) == 3


def test_it_refuses_while_exchange_sync_is_off(mailboxes):
    ExchangeSettings.objects.update(enabled=False)
    with pytest.raises(CommandError, match="Exchange sync is off or incomplete"):
        run()


def test_failures_exit_non_zero_and_point_at_the_sync_log(graph_state, mailboxes):
    graph_state.fail_item(BOB, status=400, count=10)
    with pytest.raises(CommandError, match="see the sync log"):
        run()
    assert len(graph_state.events(ANN)) == 3
