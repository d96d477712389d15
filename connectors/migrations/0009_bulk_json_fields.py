"""The pipeline's JSON columns become `connectors.fields.BulkJSONField` (bulk-inserted with
VALUES instead of UNNEST on PostgreSQL; see the field). The columns do not change, so this only
updates Django's model state: without SeparateDatabaseAndState, SQLite would copy each of these
tables into a new one."""

import connectors.fields
from django.db import migrations

FIELDS = [
    ("appointment", "data",
     connectors.fields.BulkJSONField(
         default=dict, help_text="The appointment as the event API carries it.")),
    ("appointmentevent", "payload",
     connectors.fields.BulkJSONField(help_text="The appointment as received.")),
    ("attempt", "request",
     connectors.fields.BulkJSONField(
         blank=True, default=dict,
         help_text="What was sent (method, URL, headers, body), redacted.")),
    ("dispatch", "payload",
     connectors.fields.BulkJSONField(help_text="The appointment state to send.")),
]


class Migration(migrations.Migration):

    dependencies = [
        ("connectors", "0008_backlog_queued_at"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name=model, name=name, field=field)
                for model, name, field in FIELDS
            ],
            database_operations=[],
        ),
    ]
