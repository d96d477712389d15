"""The dispatch log's needs (DESIGN.md, Dispatch log; docs/DISPATCH_LOG.md).

Schema: `AppointmentResource` (the resource nos of each appointment, so the log can search by
resource through an index; filled from the stored appointments here, by intake.py from then on)
and an index on the event id alone.

Data: the "Support" group.

Support staff read dispatches, appointments, their events and connectors, and may retry a
dispatch; they may not add, change or delete anything. Idempotent: the group and its
permissions are get_or_create'd, and permissions an operator added to the group by hand stay.

The permissions are created here if they do not exist yet: on a fresh database Django creates
permissions only in its post_migrate signal, after every migration has run.
Reversing removes only the permissions this migration grants (the group stays if it has others).
"""

import django.db.models.deletion
from django.db import migrations, models

GROUP = "Support"
# (model, codename, name as Django's post_migrate would create it)
PERMISSIONS = [
    ("dispatch", "view_dispatch", "Can view dispatch"),
    ("dispatch", "retry_dispatch", "Can retry a dispatch"),
    ("appointment", "view_appointment", "Can view appointment"),
    ("appointmentevent", "view_appointmentevent", "Can view appointment event"),
    ("connector", "view_connector", "Can view connector"),
]


BATCH = 1000


def resource_nos(data):
    """The resource nos in an appointment's data (as the event API carries it), deduplicated."""
    resources = data.get("resources") if isinstance(data, dict) else None
    nos = {
        str(r.get("resource_no"))[:50] for r in resources or []
        if isinstance(r, dict) and r.get("resource_no")
    }
    return sorted(nos)


def fill_resource_nos(apps, schema_editor):
    Appointment = apps.get_model("connectors", "Appointment")
    AppointmentResource = apps.get_model("connectors", "AppointmentResource")
    rows = []
    for pk, data in Appointment.objects.order_by("pk").values_list("pk", "data").iterator(BATCH):
        rows.extend(AppointmentResource(appointment_id=pk, resource_no=no)
                    for no in resource_nos(data))
        if len(rows) >= BATCH:
            AppointmentResource.objects.bulk_create(rows, ignore_conflicts=True)
            rows = []
    AppointmentResource.objects.bulk_create(rows, ignore_conflicts=True)


def support_permissions(apps):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    for model, codename, name in PERMISSIONS:
        content_type, _ = ContentType.objects.get_or_create(app_label="connectors", model=model)
        permission, _ = Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
        yield permission


def create_support_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    group, _ = Group.objects.get_or_create(name=GROUP)
    group.permissions.add(*support_permissions(apps))


def remove_support_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    group = Group.objects.filter(name=GROUP).first()
    if group is None:
        return
    group.permissions.remove(*support_permissions(apps))
    if not group.permissions.exists():
        group.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("connectors", "0004_schedules"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.CreateModel(
            name="AppointmentResource",
            fields=[
                ("id", models.BigAutoField(
                    auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("resource_no", models.CharField(db_index=True, max_length=50)),
                ("appointment", models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="resource_nos",
                    to="connectors.appointment")),
            ],
        ),
        migrations.AddConstraint(
            model_name="appointmentresource",
            constraint=models.UniqueConstraint(
                fields=("appointment", "resource_no"), name="appointment_resource_unique"),
        ),
        migrations.AddIndex(
            model_name="appointmentevent",
            index=models.Index(fields=["event_id"], name="event_by_event_id"),
        ),
        migrations.RunPython(fill_resource_nos, migrations.RunPython.noop),
        migrations.RunPython(create_support_group, remove_support_group),
    ]
