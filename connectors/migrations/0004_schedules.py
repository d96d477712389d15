"""The two django-q2 schedules the write-back pipeline needs (DESIGN.md, Write-back):

- "dimeconnect: sweep dispatches" every minute: queues due dispatches and reclaims those whose
  worker died, so a lost queue message or a killed worker loses nothing;
- "dimeconnect: purge dispatch log" daily at 03:00 UTC: the retention of the dispatch log.

Idempotent (get_or_create by name): an operator's later edits to a schedule (another time, a
paused one) survive re-running migrations. Reversing removes both.
"""

from datetime import UTC, datetime, time, timedelta

from django.db import migrations

SWEEP = "dimeconnect: sweep dispatches"
PURGE = "dimeconnect: purge dispatch log"
PURGE_AT = time(3, 0, tzinfo=UTC)


def next_purge_run(now):
    run = datetime.combine(now.date(), PURGE_AT)
    return run if run > now else run + timedelta(days=1)


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    now = datetime.now(UTC)
    Schedule.objects.get_or_create(
        name=SWEEP,
        defaults={
            "func": "connectors.tasks.sweep_dispatches",
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": 1,
            "repeats": -1,
            "next_run": now,
        },
    )
    Schedule.objects.get_or_create(
        name=PURGE,
        defaults={
            "func": "connectors.tasks.purge_dispatch_log",
            "schedule_type": "D",  # Schedule.DAILY
            "repeats": -1,
            "next_run": next_purge_run(now),
        },
    )


def remove_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name__in=[SWEEP, PURGE]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("connectors", "0003_dispatch_pipeline"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
