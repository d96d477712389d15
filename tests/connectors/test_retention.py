"""Dispatch log retention: the purge service, `manage.py purge_dispatch_log`, the daily task,
and the data migration that creates the sweeper and purge schedules."""

from __future__ import annotations

import importlib
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.utils.module_loading import import_string
from django_q.models import Schedule

from connectors import retention, tasks
from connectors.models import Appointment, AppointmentEvent, Attempt, Dispatch
from tests.connectors.pipeline_factories import (
    AttemptFactory,
    DispatchFactory,
    EventFactory,
    backdate,
)

pytestmark = pytest.mark.django_db


def aged(days: float, status: str, *, attempts: int = 1) -> Dispatch:
    dispatch = DispatchFactory(status=status)
    for _ in range(attempts):
        AttemptFactory(dispatch=dispatch)
    backdate(dispatch, days=days)
    backdate(dispatch.event, days=days)
    return dispatch


def exists(obj: object) -> bool:
    return type(obj).objects.filter(pk=obj.pk).exists()  # type: ignore[attr-defined]


@pytest.fixture
def log() -> dict[str, Dispatch]:
    """One dispatch per case, named by what the default limits (90/365 days) do with it."""
    return {
        "old succeeded": aged(100, "succeeded", attempts=2),
        "old cancelled": aged(100, "cancelled"),
        "recent succeeded": aged(30, "succeeded"),
        "failed, younger than a year": aged(200, "failed"),
        "failed, older than a year": aged(400, "failed", attempts=3),
        "ancient pending": aged(500, "pending"),
        "ancient sending": aged(500, "sending"),
        "ancient retrying": aged(500, "retrying"),
    }


GONE = {"old succeeded", "old cancelled", "failed, older than a year"}


def purge(**options: object) -> retention.PurgeResult:
    values: dict[str, object] = {"older_than_days": 90, "failed_older_than_days": 365}
    values.update(options)
    return retention.purge_dispatch_log(**values)  # type: ignore[arg-type]


# --- The service -----------------------------------------------------------------------------


def test_it_purges_old_closed_dispatches_and_keeps_open_and_recent_ones(log):
    result = purge()

    for name, dispatch in log.items():
        assert exists(dispatch) == (name not in GONE), name
    assert (result.dispatches, result.attempts, result.events) == (3, 6, 3)
    assert not Attempt.objects.filter(dispatch_id__in=[log[n].pk for n in GONE]).exists()
    assert Attempt.objects.count() == 5
    assert Appointment.objects.count() == len(log)  # current state is never purged


def test_it_purges_an_event_only_when_none_of_its_dispatches_remain(log):
    old_event = log["old succeeded"].event
    shared = DispatchFactory(event=old_event, status="failed")  # kept: failed for < 1 year
    backdate(shared, days=100)
    orphan = EventFactory(stale=True, dispatch_count=0)  # stale events have no dispatch
    backdate(orphan, days=100)
    recent_orphan = EventFactory(stale=True, dispatch_count=0)

    purge()

    assert exists(old_event) and exists(shared)
    assert not exists(log["old succeeded"])
    assert not exists(orphan)
    assert exists(recent_orphan)
    assert not exists(log["old cancelled"].event)
    assert exists(log["ancient pending"].event)


def test_a_dispatch_changed_recently_is_kept_however_old_it_is():
    retried = aged(400, "succeeded")
    backdate(retried, days=1, fields=("updated_at",))

    assert purge().dispatches == 0
    assert exists(retried)


def test_a_dry_run_counts_the_same_and_deletes_nothing(log):
    before = (Dispatch.objects.count(), Attempt.objects.count(), AppointmentEvent.objects.count())

    dry = purge(dry_run=True)

    assert (Dispatch.objects.count(), Attempt.objects.count(),
            AppointmentEvent.objects.count()) == before
    assert dry.dry_run and (dry.dispatches, dry.attempts, dry.events) == (3, 6, 3)
    real = purge()
    assert (real.dispatches, real.attempts, real.events) == (3, 6, 3)


def test_it_purges_in_batches_of_the_given_size():
    batch = [aged(100, "succeeded") for _ in range(7)]

    result = purge(batch_size=2)

    assert result.dispatches == 7 and result.events == 7
    assert not any(exists(d) for d in batch)


def test_the_limits_are_configurable(log):
    result = purge(older_than_days=10, failed_older_than_days=150)

    assert result.dispatches == 5  # every closed one
    assert exists(log["ancient retrying"])


@pytest.mark.parametrize(
    ("older", "failed", "message"),
    [
        (-1, 365, "older_than_days must be 0 days or more (got -1)."),
        (90, -5, "failed_older_than_days must be 0 days or more (got -5)."),
        (90, 30, "failed_older_than_days (30 days) must not be shorter than older_than_days "
                 "(90 days): failed dispatches are kept at least as long as the others."),
        (90, 10**6, "failed_older_than_days must be at most 36500 days (got 1000000)."),
    ],
)
def test_it_refuses_limits_that_make_no_sense(log, older, failed, message):
    with pytest.raises(retention.RetentionError) as refused:
        purge(older_than_days=older, failed_older_than_days=failed)

    assert str(refused.value) == message
    assert Dispatch.objects.count() == len(log)


def test_the_summary_says_what_went_and_the_cutoffs(log):
    summary = purge().summary()

    assert summary.startswith("Purged 3 dispatch(es) with 6 attempt(s) and 3 event(s): ")
    assert "succeeded and cancelled dispatches last changed before 20" in summary
    assert purge(dry_run=True).summary().endswith("Nothing was deleted.")


# --- The command -----------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("purge_dispatch_log", *args, stdout=out)
    return out.getvalue()


def test_the_command_purges_with_the_default_limits(log):
    output = run()

    assert output.startswith("Purged 3 dispatch(es) with 6 attempt(s) and 3 event(s)")
    assert {name for name, d in log.items() if not exists(d)} == GONE


def test_the_command_dry_run_deletes_nothing(log):
    output = run("--dry-run")

    assert output.startswith("Dry run: would purge 3 dispatch(es) with 6 attempt(s) and 3 event(s)")
    assert "Nothing was deleted." in output
    assert Dispatch.objects.count() == len(log)


def test_the_command_takes_both_limits(log):
    run("--older-than", "10", "--failed-older-than", "150")

    assert {name for name, d in log.items() if exists(d)} == {
        "ancient pending", "ancient sending", "ancient retrying"
    }


def test_a_longer_older_than_alone_raises_the_failed_limit_with_it(log):
    output = run("--older-than", "450")

    assert output.startswith("Purged 0 dispatch(es)")
    assert exists(log["failed, older than a year"])


def test_the_settings_give_the_default_limits(log, settings):
    settings.DISPATCH_LOG_RETENTION_DAYS = 20
    settings.DISPATCH_LOG_FAILED_RETENTION_DAYS = 300

    run()

    assert not exists(log["recent succeeded"])
    assert exists(log["failed, younger than a year"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "-3"], "--older-than must be 0 days or more (got -3)."),
        (["--failed-older-than", "-1"], "--failed-older-than must be 0 days or more (got -1)."),
        (["--older-than", "90", "--failed-older-than", "30"],
         "--failed-older-than (30 days) must not be shorter than --older-than (90 days): "
         "failed dispatches are kept at least as long as the others."),
        (["--batch-size", "0"], "--batch-size must be at least 1."),
    ],
)
def test_the_command_refuses_bad_input_with_a_clear_message(log, args, message):
    with pytest.raises(CommandError) as refused:
        run(*args)

    assert str(refused.value) == message
    assert Dispatch.objects.count() == len(log)


def test_the_command_refuses_a_number_that_is_not_one():
    with pytest.raises(CommandError, match="--older-than: invalid int value: 'ninety'"):
        run("--older-than", "ninety")


# --- The daily task and the schedules --------------------------------------------------------


def test_the_daily_task_purges_with_the_settings(log):
    summary = tasks.purge_dispatch_log()

    assert summary.startswith("Purged 3 dispatch(es)")
    assert not exists(log["old succeeded"])


def test_the_daily_task_refuses_settings_that_make_no_sense(log, settings):
    settings.DISPATCH_LOG_FAILED_RETENTION_DAYS = 30

    with pytest.raises(retention.RetentionError, match="DISPATCH_LOG_FAILED_RETENTION_DAYS "
                       r"\(30 days\) must not be shorter than DISPATCH_LOG_RETENTION_DAYS"):
        tasks.purge_dispatch_log()
    assert Dispatch.objects.count() == len(log)


SCHEDULES = {
    "dimeconnect: sweep dispatches": ("connectors.tasks.sweep_dispatches", Schedule.MINUTES),
    "dimeconnect: purge dispatch log": ("connectors.tasks.purge_dispatch_log", Schedule.DAILY),
}


def schedules() -> dict[str, tuple[str, str]]:
    return {s.name: (s.func, s.schedule_type)
            for s in Schedule.objects.filter(name__startswith="dimeconnect: ")}


def test_the_migration_created_both_schedules_once():
    assert schedules() == SCHEDULES
    sweep = Schedule.objects.get(name="dimeconnect: sweep dispatches")
    assert (sweep.minutes, sweep.repeats) == (1, -1)
    purge_schedule = Schedule.objects.get(name="dimeconnect: purge dispatch log")
    assert purge_schedule.repeats == -1
    assert (purge_schedule.next_run.hour, purge_schedule.next_run.minute) == (3, 0)
    for func, _ in SCHEDULES.values():
        assert callable(import_string(func))


def test_running_the_migration_again_creates_nothing_and_keeps_an_operators_edit():
    migration = importlib.import_module("connectors.migrations.0004_schedules")
    Schedule.objects.filter(name="dimeconnect: sweep dispatches").update(minutes=5)

    migration.create_schedules(apps, None)
    migration.create_schedules(apps, None)

    assert schedules() == SCHEDULES
    assert Schedule.objects.filter(name__startswith="dimeconnect: ").count() == 2
    assert Schedule.objects.get(name="dimeconnect: sweep dispatches").minutes == 5


def test_reversing_the_migration_removes_both_schedules():
    migration = importlib.import_module("connectors.migrations.0004_schedules")

    migration.remove_schedules(apps, None)

    assert schedules() == {}
    migration.create_schedules(apps, None)
    assert schedules() == SCHEDULES
