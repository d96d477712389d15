"""The django-q2 schedules of the inbound Exchange sync (Outlook → planner):

- "exchange: renew subscriptions" every 30 minutes: creates the subscriptions synced mailboxes
  lack, removes those of mailboxes no longer synced, and renews each one well before its
  expiry (Graph allows at most 4230 minutes for events);
- "exchange: delta rounds" every minute: runs the delta rounds that are due (a debounced
  notification whose task was lost) and the safety-net round of every mailbox whose last round
  is older than the settings' "safety round" minutes, for notifications Graph never sent.

Idempotent (get_or_create by name), so an operator's edits survive; reversing removes them.
"""

from datetime import UTC, datetime

from django.db import migrations

SCHEDULES = {
    "exchange: renew subscriptions": ("exchange_sync.tasks.renew_subscriptions_task", 30),
    "exchange: delta rounds": ("exchange_sync.tasks.delta_rounds_task", 1),
}


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, (func, minutes) in SCHEDULES.items():
        Schedule.objects.get_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": "I",  # Schedule.MINUTES
                "minutes": minutes,
                "repeats": -1,
                "next_run": datetime.now(UTC),
            },
        )


def remove_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=list(SCHEDULES)).delete()


class Migration(migrations.Migration):
    dependencies = [("exchange_sync", "0002_schedules")]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
