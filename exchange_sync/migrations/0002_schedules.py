"""The django-q2 schedule of the outbound Exchange sync: "exchange: push pending" every minute
pushes whatever the queue holds whose doorbell task was lost or whose worker died.

Idempotent (get_or_create by name), so an operator's edits survive; reversing removes it.
"""

from datetime import UTC, datetime

from django.db import migrations

PUSH = "exchange: push pending"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=PUSH,
        defaults={
            "func": "exchange_sync.tasks.push_pending_task",
            "schedule_type": "I",  # Schedule.MINUTES
            "minutes": 1,
            "repeats": -1,
            "next_run": datetime.now(UTC),
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=PUSH).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("exchange_sync", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
