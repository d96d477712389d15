"""The write-back pipeline in process: intake, claim, send, record, retry, order, coalesce,
quarantine and sweep, against the webhook receiver fake (a real server)."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.conf import Conf

from connectors import delivery, services
from connectors.delivery import claiming
from connectors.intake import IncomingEvent, events_accept
from connectors.models import Appointment, AppointmentEvent, Attempt, Connector, Dispatch
from tests.connectors.backoffices import samples
from tests.fakes import webhook_receiver

pytestmark = pytest.mark.django_db

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def tasks_run_inline(monkeypatch):
    """django-q2's sync mode: a queued task runs at once, in this process."""
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def receiver():
    with webhook_receiver.make(secrets=[SECRET]) as server:
        yield server


def hook(receiver, **extra) -> Connector:
    values = {"name": "Hook", "type": "webhook", "api_type": "rest", "auth_type": "none",
              "uri": receiver.url + "/hooks", "source_app": "BCPROD", "signing_secret": SECRET,
              "retry_schedule": "0, 10m, 1h"}
    values.update(extra)
    return services.connector_save(Connector(**values))


def post(action: str, event_id: str, *, at: datetime = T0, **appointment) -> list[int]:
    event = IncomingEvent(event_id=event_id, action=action, occurred_at=at,
                          appointment=samples.appointment(**appointment))
    [outcome] = events_accept(client=None, events=[event])
    return outcome.dispatch_ids


def delivered_types(receiver) -> list[str]:
    return [d.json()["type"] for d in receiver.state.deliveries]


def test_an_event_is_delivered_signed_and_recorded(receiver):
    hook(receiver)
    [dispatch_id] = post("create", "e1")
    assert delivery.deliver(dispatch_id) == "succeeded"
    [delivery_] = receiver.state.deliveries
    dispatch = Dispatch.objects.get(pk=dispatch_id)
    assert delivery_.header("webhook-id") == dispatch.message_id
    assert dispatch.status == "succeeded" and dispatch.delivered_at is not None
    [attempt] = dispatch.attempt_log.all()
    assert attempt.outcome == "succeeded" and attempt.status_code == 200
    assert attempt.request["headers"]["webhook-signature"] == "[redacted]"
    assert SECRET not in str(attempt.request)


def test_only_matching_connectors_get_a_dispatch(receiver):
    hook(receiver)
    hook(receiver, name="Other app", source_app="OTHER")
    hook(receiver, name="Off", enabled=False)
    hook(receiver, name="Creates only", crud_types=["create"])
    hook(receiver, name="Typed", source_type="PROJECT")
    assert len(post("update", "e1", source_type="SERVICE")) == 1


def test_a_stale_event_is_recorded_but_changes_and_sends_nothing(receiver):
    hook(receiver)
    post("update", "new", at=T0, subject="Newer")
    assert post("update", "old", at=T0 - timedelta(minutes=5), subject="Older") == []
    assert AppointmentEvent.objects.get(event_id="old").stale is True
    assert Appointment.objects.get().data["subject"] == "Newer"


def test_a_repeated_event_id_from_the_same_client_is_a_duplicate(receiver):
    hook(receiver)
    client, _ = services.api_client_create(name="ERP", source_apps=["BCPROD"])
    event = IncomingEvent("e1", "create", T0, samples.appointment())
    first = events_accept(client=client, events=[event])
    second = events_accept(client=client, events=[event, event])
    assert [o.status for o in first + second] == ["accepted", "duplicate", "duplicate"]
    assert Dispatch.objects.count() == 1


def test_a_create_is_never_overtaken_by_its_update_or_delete(receiver):
    hook(receiver)
    [create] = post("create", "e1")
    [update] = post("update", "e2", at=T0 + timedelta(minutes=1))
    [delete] = post("delete", "e3", at=T0 + timedelta(minutes=2))
    assert delivery.deliver(delete) == "skipped"
    assert delivery.deliver(update) == "skipped"
    assert receiver.state.deliveries == []
    delivery.deliver(create)  # then each finished dispatch queues the next (inline here)
    assert delivered_types(receiver) == [
        "appointment.created", "appointment.updated", "appointment.deleted"]


def test_queued_updates_are_coalesced_into_the_newest_state(receiver, monkeypatch):
    hook(receiver)
    [create] = post("create", "e1")
    updates = [post("update", f"u{n}", at=T0 + timedelta(minutes=n), subject=f"v{n}")[0]
               for n in (1, 2, 3)]
    delivery.deliver(create)
    assert delivered_types(receiver) == ["appointment.created", "appointment.updated"]
    assert receiver.state.deliveries[-1].json()["data"]["subject"] == "v3"
    first, second, newest = (Dispatch.objects.get(pk=pk) for pk in updates)
    assert (first.status, second.status, newest.status) == ("cancelled", "cancelled", "succeeded")
    assert first.superseded_by_id == newest.pk
    [log] = first.attempt_log.all()
    assert log.outcome == "coalesced" and f"dispatch {newest.pk}" in log.message


def test_a_transient_failure_is_retried_on_the_schedule(receiver):
    hook(receiver)
    receiver.fail(status=503, count=1)
    [dispatch_id] = post("create", "e1")
    before = timezone.now()
    assert delivery.deliver(dispatch_id) == "retrying"
    dispatch = Dispatch.objects.get(pk=dispatch_id)
    wait = (dispatch.next_attempt_at - before).total_seconds()
    assert 600 * 0.8 - 1 <= wait <= 600 * 1.2 + 1  # 10 min ± 20 %
    assert dispatch.last_status_code == 503 and "HTTP 503" in dispatch.last_error
    Dispatch.objects.filter(pk=dispatch_id).update(next_attempt_at=timezone.now())
    assert delivery.deliver(dispatch_id) == "succeeded"
    assert [a.outcome for a in dispatch.attempt_log.all()] == ["retry", "succeeded"]


def test_a_short_retry_is_waited_for_in_the_task(receiver):
    hook(receiver, retry_schedule="0, 1s")
    receiver.fail(status=503, count=1)
    [dispatch_id] = post("create", "e1")
    assert delivery.deliver(dispatch_id) == "succeeded"
    assert len(receiver.state.deliveries) == 1


def test_retry_after_and_throttling_stretch_the_wait(receiver):
    hook(receiver, retry_schedule="0, 5s")
    receiver.fail(status=503, headers={"Retry-After": "120"}, count=1)
    [first] = post("create", "e1")
    delivery.deliver(first)
    wait = (Dispatch.objects.get(pk=first).next_attempt_at - timezone.now()).total_seconds()
    assert 110 < wait <= 121
    receiver.fail(status=429, count=1)
    [second] = post("create", "e2", guid="00000000-0000-4000-8000-000000000002")
    delivery.deliver(second)
    wait = (Dispatch.objects.get(pk=second).next_attempt_at - timezone.now()).total_seconds()
    assert 55 < wait <= 61


def test_a_permanent_error_fails_at_once_with_its_hint(receiver):
    hook(receiver)
    receiver.fail(status=400, count=1)
    [dispatch_id] = post("create", "e1")
    assert delivery.deliver(dispatch_id) == "failed"
    dispatch = Dispatch.objects.get(pk=dispatch_id)
    assert dispatch.attempts == 1 and dispatch.last_hint.startswith("The back office refused")


def test_an_exhausted_schedule_fails_and_says_so(receiver):
    hook(receiver, retry_schedule="0")
    receiver.fail(status=503)
    [dispatch_id] = post("create", "e1")
    assert delivery.deliver(dispatch_id) == "failed"
    [attempt] = Dispatch.objects.get(pk=dispatch_id).attempt_log.all()
    assert attempt.message.endswith("Gave up after 1 attempt(s) (the schedule is used up).")


def test_a_disabled_connector_cancels_its_waiting_dispatch(receiver):
    connector = hook(receiver)
    [dispatch_id] = post("create", "e1")
    Connector.objects.filter(pk=connector.pk).update(enabled=False)
    assert delivery.deliver(dispatch_id) == "skipped"
    assert Dispatch.objects.get(pk=dispatch_id).status == "cancelled"


def test_a_disabled_connectors_backlog_is_cancelled_not_sent(receiver, no_worker):
    connector = hook(receiver)
    ids = [post("create", f"e{n}", guid=guid(n))[0] for n in range(3)]
    Connector.objects.filter(pk=connector.pk).update(enabled=False)
    assert delivery.deliver_backlog(connector.pk) == 0
    assert set(Dispatch.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        "cancelled"}
    assert receiver.state.deliveries == []
    assert list(Attempt.objects.filter(dispatch_id=ids[0]).values_list("message", flat=True)) == [
        "Cancelled: the connector was disabled before this was sent."]


def test_the_sweeper_reclaims_a_dead_workers_dispatch(receiver):
    hook(receiver)
    [dispatch_id] = post("create", "e1")
    Dispatch.objects.filter(pk=dispatch_id).update(
        status="sending", lease_until=timezone.now() - timedelta(seconds=1), lease_owner="w1")
    assert delivery.sweep() == 1
    dispatch = Dispatch.objects.get(pk=dispatch_id)
    assert dispatch.status == "succeeded"
    assert [a.outcome for a in dispatch.attempt_log.all()] == ["lost", "succeeded"]


def test_the_sweeper_counts_chain_heads_and_queues_their_connectors_task(
    receiver, monkeypatch
):
    monkeypatch.setattr(Conf, "SYNC", False)
    queued: list[int] = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, pk, **kw: queued.append(pk))
    connector = hook(receiver)
    post("create", "e1")
    post("update", "e2", at=T0 + timedelta(minutes=1))
    assert delivery.sweep() == 1 and queued == [connector.pk]
    # The sweeper queues even when a task seems queued already: that message may be lost.
    assert delivery.sweep() == 1 and queued == [connector.pk, connector.pk]


def test_a_long_failing_connector_is_quarantined_and_resume_sends_what_it_held(
    receiver, settings
):
    settings.QUARANTINE_AFTER_HOURS = 0
    settings.QUARANTINE_MIN_FAILURES = 2
    connector = hook(receiver)
    receiver.fail(status=503)
    first = post("create", "e1")[0]
    delivery.deliver(first)
    second = post("create", "e2", guid="00000000-0000-4000-8000-000000000002")[0]
    delivery.deliver(second)
    connector.refresh_from_db()
    assert connector.quarantined_at is not None
    assert "failed attempts" in connector.quarantine_reason
    Dispatch.objects.update(next_attempt_at=timezone.now())
    assert delivery.deliver(first) == "skipped"  # held: not even claimed
    assert Dispatch.objects.get(pk=first).attempts == 1
    assert delivery.sweep() == 0
    receiver.reset()
    assert delivery.connector_resume(connector) == 2
    assert len(receiver.state.deliveries) == 0  # on_commit: runs after the test's transaction
    delivery.sweep()
    assert len(receiver.state.deliveries) == 2
    connector.refresh_from_db()
    assert connector.quarantined_at is None and connector.failing_since is None


def test_a_manual_retry_restarts_a_failed_dispatch_and_logs_who(receiver, admin_user):
    hook(receiver)
    receiver.fail(status=400, count=1)
    [dispatch_id] = post("create", "e1")
    delivery.deliver(dispatch_id)
    assert delivery.dispatches_retry([dispatch_id], user=admin_user) == 1
    dispatch = Dispatch.objects.get(pk=dispatch_id)
    assert dispatch.status == "pending" and dispatch.attempts == 0
    assert dispatch.attempt_log.last().message == "Retry requested by admin."
    assert delivery.deliver(dispatch_id) == "succeeded"


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="row locks with skip_locked: PostgreSQL only (CI's second pass runs it)",
)
@pytest.mark.django_db(transaction=True)
def test_coalescing_never_skips_an_update_another_worker_holds(receiver, monkeypatch):
    """On PostgreSQL, skip_locked hides a row another worker holds; coalescing past it would
    send the newest state and leave the held, older update to be sent after it."""
    from django.db import connections, transaction

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr("django_q.tasks.async_task", lambda *args, **kwargs: None)  # no worker
    hook(receiver)
    x, y, z = (post("update", f"e{n}", at=T0 + timedelta(minutes=n), subject=f"v{n}")[0]
               for n in range(3))
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            list(Dispatch.objects.select_for_update().filter(pk=y))
            locked.set()
            release.wait(10)
        connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait(10)
    claimed = delivery.claim(x)
    release.set()
    holder.join()
    assert claimed is not None and claimed.pk == x  # sent as it is, nothing coalesced
    assert dict(Dispatch.objects.values_list("pk", "status")) == {
        x: "sending", y: "pending", z: "pending"}
    Dispatch.objects.filter(pk=x).update(status="succeeded")
    assert delivery.claim(y).pk == z  # without contention the next claim coalesces
    assert Dispatch.objects.get(pk=y).status == "cancelled"


def test_a_clients_last_use_is_written_at_most_once_a_minute(receiver):
    """Each request reads its client with the key check; within the minute no UPDATE is sent."""
    hook(receiver)
    client, _ = services.api_client_create(name="ERP", source_apps=["BCPROD"])
    events_accept(client=client, events=[IncomingEvent("e1", "create", T0, samples.appointment())])
    client.refresh_from_db()
    first = client.last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        events_accept(client=client, events=[
            IncomingEvent("e2", "update", T0, samples.appointment())])
    assert not [q for q in queries if "connectors_apiclient" in q["sql"]]
    client.refresh_from_db()
    assert client.last_used_at == first
    client.__class__.objects.filter(pk=client.pk).update(
        last_used_at=first - timedelta(minutes=2))
    client.refresh_from_db()  # as the next request's key check reads it
    events_accept(client=client, events=[IncomingEvent("e3", "update", T0, samples.appointment())])
    client.refresh_from_db()
    assert client.last_used_at > first


# --- Backlog tasks: one task sends a connector's due dispatches ----------------------------------


@pytest.fixture
def no_worker(monkeypatch):
    """Queued tasks go nowhere: they are only recorded (their argument, a connector's pk)."""
    monkeypatch.setattr(Conf, "SYNC", False)
    queued: list[int] = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda func, pk, **kw: queued.append(pk))
    return queued


def guid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def sent_by_guid(receiver) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for d in receiver.state.deliveries:
        kinds.setdefault(d.json()["data"]["guid"], []).append(d.json()["type"])
    return kinds


def test_a_backlog_task_sends_its_connectors_due_chain_heads_keeping_each_chains_order(
    receiver, no_worker
):
    connector = hook(receiver)
    hook(receiver, name="Other", uri=receiver.url + "/other")
    [a_create, other_a] = post("create", "e1", guid=guid(1))
    [a_update, _] = post("update", "e2", at=T0 + timedelta(minutes=1), guid=guid(1))
    [b_create, _] = post("create", "e3", guid=guid(2))
    Dispatch.objects.filter(pk=b_create).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    [c_create, _] = post("create", "e4", guid=guid(3))
    Connector.objects.filter(pk=connector.pk).update(backlog_queued_at=timezone.now())

    assert delivery.deliver_backlog(connector.pk) == 3
    assert {d.path for d in receiver.state.deliveries} == {"/hooks"}
    assert sent_by_guid(receiver) == {
        guid(1): ["appointment.created", "appointment.updated"],
        guid(3): ["appointment.created"],
    }
    statuses = dict(Dispatch.objects.values_list("pk", "status"))
    assert statuses[b_create] == "pending"  # not due yet
    assert statuses[other_a] == "pending"  # another connector's
    assert delivery.deliver(a_update) == "skipped"  # an old per-dispatch task finds it sent
    assert delivery.deliver_backlog(connector.pk) == 0  # nothing due: a second task is harmless
    assert Connector.objects.get(pk=connector.pk).backlog_queued_at is None  # the start cleared it
    assert no_worker == []


def test_a_failed_dispatch_does_not_hold_up_other_chains(receiver, no_worker):
    connector = hook(receiver)  # retries after 10 min: not waited for in the task
    receiver.fail(status=503, count=1)
    ids = [post("create", f"e{n}", guid=guid(n))[0] for n in range(3)]
    assert delivery.deliver_backlog(connector.pk) == 3
    assert dict(Dispatch.objects.values_list("pk", "status")) == {
        ids[0]: "retrying", ids[1]: "succeeded", ids[2]: "succeeded"}
    assert no_worker == []  # the retry is the sweeper's, in 10 minutes


def test_a_backlog_task_waits_for_a_short_retry(receiver, no_worker):
    connector = hook(receiver, retry_schedule="0, 1s, 1h")
    receiver.fail(status=503, count=1)
    [dispatch_id] = post("create", "e1")
    assert delivery.deliver_backlog(connector.pk) == 2
    assert Dispatch.objects.get(pk=dispatch_id).status == "succeeded"
    assert len(receiver.state.deliveries) == 1


def test_a_backlog_task_out_of_time_queues_another(receiver, no_worker, monkeypatch):
    monkeypatch.setattr("connectors.delivery.sending.BACKLOG_SECONDS", 0)
    connector = hook(receiver)
    post("create", "e1")
    assert delivery.deliver_backlog(connector.pk) == 0
    assert no_worker == [connector.pk]
    assert Connector.objects.get(pk=connector.pk).backlog_queued_at is not None


def test_a_backlog_task_out_of_time_leaves_a_pending_short_retry_to_its_successor(
    receiver, no_worker, monkeypatch
):
    monkeypatch.setattr("connectors.delivery.sending.BACKLOG_SECONDS", 0)
    connector = hook(receiver)
    [dispatch_id] = post("create", "e1")
    Dispatch.objects.filter(pk=dispatch_id).update(
        status="retrying", next_attempt_at=timezone.now() + timedelta(seconds=5))
    started = time.monotonic()
    assert delivery.deliver_backlog(connector.pk) == 0
    assert time.monotonic() - started < 1  # did not wait the 5 s
    assert no_worker == [connector.pk]


def test_a_long_backlog_asks_for_a_helper_once(receiver, no_worker, monkeypatch):
    monkeypatch.setattr("connectors.delivery.sending.BACKLOG_PAGE", 2)
    connector = hook(receiver)
    for n in range(7):
        post("create", f"e{n}", guid=guid(n))
    assert delivery.deliver_backlog(connector.pk) == 7
    assert no_worker == [connector.pk]  # the second page was full too
    assert len(receiver.state.deliveries) == 7


def test_a_quarantined_connectors_backlog_waits(receiver, no_worker):
    connector = hook(receiver)
    post("create", "e1")
    Connector.objects.filter(pk=connector.pk).update(quarantined_at=timezone.now())
    assert delivery.deliver_backlog(connector.pk) == 0
    assert delivery.ring([connector.pk]) == []  # nor is a task queued for it
    assert receiver.state.deliveries == [] and no_worker == []


def test_ring_queues_one_task_until_it_starts(receiver, no_worker, monkeypatch):
    connector = hook(receiver)
    assert delivery.ring([connector.pk, connector.pk]) == [connector.pk]
    assert delivery.ring([connector.pk]) == []  # one is waiting
    assert no_worker == [connector.pk]
    delivery.deliver_backlog(connector.pk)  # the task starts: the next change rings again
    assert delivery.ring([connector.pk]) == [connector.pk]
    stale = timezone.now() - timedelta(seconds=delivery.common.RING_STALE_S + 1)
    Connector.objects.filter(pk=connector.pk).update(backlog_queued_at=stale)
    assert delivery.ring([connector.pk]) == [connector.pk]  # that message was presumably lost
    assert delivery.ring([connector.pk], force=True) == [connector.pk]
    assert no_worker == [connector.pk] * 4


def test_a_broker_failure_leaves_no_mark(receiver, monkeypatch, caplog):
    monkeypatch.setattr(Conf, "SYNC", False)

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr("django_q.tasks.async_task", broker_down)
    connector = hook(receiver)
    assert delivery.ring([connector.pk]) == []
    assert Connector.objects.get(pk=connector.pk).backlog_queued_at is None
    assert "the sweeper will send their dispatches" in caplog.text


def test_a_delivered_dispatch_rings_for_the_next_of_its_chain(receiver, no_worker):
    connector = hook(receiver)
    [create] = post("create", "e1")
    post("update", "e2", at=T0 + timedelta(minutes=1))
    assert delivery.deliver(create) == "succeeded"
    assert no_worker == [connector.pk]


def test_accepted_events_ring_their_connectors_after_commit(
    receiver, no_worker, django_capture_on_commit_callbacks
):
    first = hook(receiver)
    second = hook(receiver, name="Second", uri=receiver.url + "/second")
    with django_capture_on_commit_callbacks(execute=True):
        events_accept(client=None, events=[
            IncomingEvent(event_id=f"e{n}", action="create", occurred_at=T0,
                          appointment=samples.appointment(guid=guid(n)))
            for n in range(3)
        ])
    assert sorted(no_worker) == sorted([first.pk, second.pk])  # one task each, not one a dispatch


# --- Pages: a backlog task claims its dispatches a page at a time -------------------------------


def test_two_claimers_take_different_pages_of_heads(receiver, no_worker):
    connector = hook(receiver)
    ids = [post("create", f"e{n}", guid=guid(n))[0] for n in range(5)]
    first = claiming.claim_page(connector.pk, 3)
    second = claiming.claim_page(connector.pk, 3)
    assert [d.pk for d in first.dispatches] == ids[:3]
    assert [d.pk for d in second.dispatches] == ids[3:]  # the first's are taken: not heads
    assert claiming.claim_page(connector.pk, 3) is None
    assert set(Dispatch.objects.values_list("status", flat=True)) == {"sending"}
    assert set(Dispatch.objects.values_list("attempts", flat=True)) == {1}


def test_a_page_keeps_each_chains_order_and_coalesces_queued_updates(receiver, no_worker):
    connector = hook(receiver)
    [create] = post("create", "e1", guid=guid(1))
    [old] = post("update", "e2", at=T0 + timedelta(minutes=1), guid=guid(1), subject="old")
    [new] = post("update", "e3", at=T0 + timedelta(minutes=2), guid=guid(1), subject="new")
    [other] = post("create", "e4", guid=guid(2))
    page = claiming.claim_page(connector.pk, 10)
    assert [d.pk for d in page.dispatches] == [create, other]  # the updates wait their turn
    page.release(page.dispatches)
    assert set(Dispatch.objects.values_list("status", "attempts")) == {("pending", 0)}

    assert delivery.deliver_backlog(connector.pk) == 3
    statuses = dict(Dispatch.objects.values_list("pk", "status"))
    assert (statuses[old], statuses[new]) == ("cancelled", "succeeded")  # coalesced
    assert [d.json()["data"]["subject"] for d in receiver.state.deliveries][-1] == "new"
    assert sent_by_guid(receiver)[guid(1)] == ["appointment.created", "appointment.updated"]


def test_out_of_time_a_page_gives_back_what_it_did_not_send(receiver, no_worker, monkeypatch):
    monkeypatch.setattr("connectors.delivery.sending.BACKLOG_SECONDS", 0.5)
    receiver.fail(delay_s=0.3)  # every delivery takes 0.3 s
    connector = hook(receiver)
    ids = [post("create", f"e{n}", guid=guid(n))[0] for n in range(6)]
    Dispatch.objects.filter(pk=ids[-1]).update(status="retrying", attempts=2)
    sent = delivery.deliver_backlog(connector.pk)
    assert 1 <= sent <= 3
    rows = {d.pk: d for d in Dispatch.objects.all()}
    assert [rows[pk].status for pk in ids[:sent]] == ["succeeded"] * sent
    given_back = [rows[pk] for pk in ids[sent:]]
    assert [(d.status, d.attempts, d.lease_until, d.lease_owner) for d in given_back[:-1]] == [
        ("pending", 0, None, "")] * (len(given_back) - 1)
    assert (given_back[-1].status, given_back[-1].attempts) == ("retrying", 2)
    assert no_worker == [connector.pk]  # the successor sends the rest


def test_a_long_page_renews_its_lease_and_skips_what_the_sweeper_took_back(receiver, no_worker):
    connector = hook(receiver)
    ids = [post("create", f"e{n}", guid=guid(n))[0] for n in range(3)]
    page = claiming.claim_page(connector.pk, 3)
    page.lease_until = timezone.now() + timedelta(seconds=1)  # as if claimed long ago
    Dispatch.objects.filter(pk=ids[1]).update(status="retrying", lease_owner="")  # the sweeper
    kept = page.keep(page.dispatches)
    assert [d.pk for d in kept] == [ids[0], ids[2]]
    leases = dict(Dispatch.objects.filter(pk__in=[ids[0], ids[2]]).values_list("pk", "lease_until"))
    assert all(lease > timezone.now() + timedelta(seconds=30) for lease in leases.values())
    assert page.keep(kept) == kept  # plenty of lease left: no statement


def test_a_pages_successes_are_written_together_each_with_its_own_time(receiver, no_worker):
    connector = hook(receiver)
    receiver.fail(status=503, count=1)  # the first fails, the rest succeed after it
    ids = [post("create", f"e{n}", guid=guid(n))[0] for n in range(4)]
    Dispatch.objects.filter(pk=ids[1]).update(attempts=1)
    retried = Dispatch.objects.get(pk=ids[1])
    delivery.common.log_attempt(retried, "retry", message="earlier")
    assert delivery.deliver_backlog(connector.pk) == 4
    rows = {d.pk: d for d in Dispatch.objects.all()}
    assert rows[ids[0]].status == "retrying"
    delivered = [rows[pk].delivered_at for pk in ids[1:]]
    assert all(d.status == "succeeded" for d in rows.values() if d.pk != ids[0])
    assert delivered == sorted(delivered) and len(set(delivered)) == 3  # each its own time
    numbers = list(Attempt.objects.filter(dispatch_id=ids[1]).values_list("number", "outcome"))
    assert numbers == [(1, "retry"), (2, "succeeded")]
    # the failure came first and the successes after it: the connector is not failing
    assert Connector.objects.get(pk=connector.pk).failing_since is None
