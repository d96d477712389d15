"""The connector health page's indexes (docs/BENCHMARKS.md has the plans and timings).

- `Attempt.connector`: the dispatch's connector, copied onto each attempt (delivery.common.log_attempt sets
  it), backfilled here with one UPDATE. Counting failed attempts per connector and window then
  reads one index range per connector instead of joining every attempt of the window to its
  dispatch (on SQLite 80-100 ms → 5 ms with 300,000 attempts), and the last error of a
  connector is one index lookup, however old it is.
- `attempt_health` (connector, outcome, started_at): those counts and the latest failure.
- `dispatch_health` gains `delivered_at`, so success rates, hourly bars and latency
  percentiles are read from the index alone (it still serves every (connector, status,
  created_at) lookup it served before).

On a large existing log the UPDATE rewrites every attempt row once; on SQLite the NOT NULL
step copies the table. Both take seconds per million attempts.
"""

import django.db.models.deletion
from django.db import migrations, models

BACKFILL = """
UPDATE connectors_attempt SET connector_id = (
    SELECT connectors_dispatch.connector_id FROM connectors_dispatch
    WHERE connectors_dispatch.id = connectors_attempt.dispatch_id
)
"""


def backfill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(BACKFILL)
        if schema_editor.connection.vendor == "postgresql":
            # The deferred FK check of the UPDATE must run before the ALTER TABLE that follows
            # ("cannot ALTER TABLE because it has pending trigger events").
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):

    dependencies = [
        ("connectors", "0006_action_uri"),
    ]

    operations = [
        migrations.AddField(
            model_name="attempt",
            name="connector",
            field=models.ForeignKey(
                db_index=False, editable=False, null=True,
                on_delete=django.db.models.deletion.CASCADE, related_name="+",
                to="connectors.connector",
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name="attempt",
            name="connector",
            field=models.ForeignKey(
                db_index=False, editable=False,
                on_delete=django.db.models.deletion.CASCADE, related_name="+",
                to="connectors.connector",
            ),
        ),
        migrations.AddIndex(
            model_name="attempt",
            index=models.Index(
                fields=["connector", "outcome", "started_at"], name="attempt_health"
            ),
        ),
        migrations.RemoveIndex(
            model_name="dispatch",
            name="dispatch_health",
        ),
        migrations.AddIndex(
            model_name="dispatch",
            index=models.Index(
                fields=["connector", "status", "created_at", "delivered_at"],
                name="dispatch_health",
            ),
        ),
    ]
