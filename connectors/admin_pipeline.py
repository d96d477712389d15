"""Admin for the write-back pipeline: appointments, events and dispatches, read-only.

Support staff read here what came in and what went out; nobody edits the log. The one thing
to do is "Retry selected dispatches" (permission `connectors.retry_dispatch`). Payloads are
appointment data and attempts are stored redacted, so no page here can show a secret.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from . import delivery
from .admin_action_uris import action_uri_links
from .dispatch_log.present import status_class
from .models import (
    OPEN_STATUSES,
    RETRY_DISPATCH_PERMISSION,
    SECRET_FIELDS,
    Appointment,
    AppointmentEvent,
    Connector,
    Dispatch,
)

RETRY_PERMISSION = RETRY_DISPATCH_PERMISSION
CONNECTOR_SECRETS = (*SECRET_FIELDS, "previous_signing_secret")



def pretty_json(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre class="dc-json">{}</pre>', text)


def changelist_link(model: type[Any], label: str, **filters: Any) -> SafeString:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    query = "&".join(f"{name}={value}" for name, value in filters.items())
    return format_html('<a href="{}?{}">{}</a>', url, query, label)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable by whoever has the view permission; nobody adds, changes or deletes."""

    list_per_page = 50

    class Media:
        css = {"all": ("connectors/admin.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return flatten_fieldsets(self.get_fieldsets(request, obj))


@admin.register(Appointment)
class AppointmentAdmin(ReadOnlyAdmin):
    list_display = (
        "guid", "source_app", "appointment_no", "job_no", "task_no", "deleted", "state_at",
    )
    list_filter = ("source_app", "deleted")
    search_fields = ("guid", "appointment_no", "job_no", "task_no")
    fieldsets = (
        ("Appointment", {"fields": (
            "guid", "source_app", "source_type", "appointment_id", "appointment_no", "job_no",
            "task_no", "deleted", "state_at", "created_at", "updated_at",
        )}),
        ("History", {"fields": ("events_link", "dispatches_link")}),
        ("Action URIs", {"fields": ("action_uris",)}),
        ("Current state", {"fields": ("data_pretty",)}),
    )

    @admin.display(description="action URIs")
    def action_uris(self, obj: Appointment) -> SafeString:
        return action_uri_links(obj)

    @admin.display(description="events")
    def events_link(self, obj: Appointment) -> SafeString:
        count = obj.events.count()
        return changelist_link(AppointmentEvent, f"{count} event(s)", appointment__id__exact=obj.pk)

    @admin.display(description="dispatches")
    def dispatches_link(self, obj: Appointment) -> SafeString:
        count = obj.dispatches.count()
        return changelist_link(Dispatch, f"{count} dispatch(es)", appointment__id__exact=obj.pk)

    @admin.display(description="data")
    def data_pretty(self, obj: Appointment) -> SafeString:
        return pretty_json(obj.data)


@admin.register(AppointmentEvent)
class AppointmentEventAdmin(ReadOnlyAdmin):
    list_display = (
        "event_id", "action", "source_app", "client", "occurred_at", "received_at", "stale",
        "dispatch_count",
    )
    list_filter = ("action", "stale", "source", "client")
    list_select_related = ("appointment", "client")
    search_fields = ("event_id", "appointment__guid", "appointment__job_no")
    fieldsets = (
        ("Event", {"fields": (
            "event_id", "action", "client", "source", "occurred_at", "received_at", "stale",
        )}),
        ("Appointment", {"fields": ("appointment", "dispatches_link")}),
        ("Payload", {"fields": ("payload_pretty",)}),
    )

    @admin.display(description="source app", ordering="appointment__source_app")
    def source_app(self, obj: AppointmentEvent) -> str:
        return obj.appointment.source_app

    @admin.display(description="dispatches")
    def dispatches_link(self, obj: AppointmentEvent) -> SafeString:
        return changelist_link(
            Dispatch, f"{obj.dispatch_count} dispatch(es)", event__id__exact=obj.pk
        )

    @admin.display(description="payload")
    def payload_pretty(self, obj: AppointmentEvent) -> SafeString:
        return pretty_json(obj.payload)


@admin.register(Dispatch)
class DispatchAdmin(ReadOnlyAdmin):
    change_form_template = "admin/connectors/dispatch/change_form.html"
    list_display = (
        "id", "status_badge", "action", "connector", "appointment_label", "attempts",
        "next_attempt_at", "last_error_short", "created_at",
    )
    list_display_links = ("id", "status_badge")
    list_filter = ("status", "connector", "action", "connector__source_app")
    list_select_related = ("connector", "appointment")
    search_fields = (
        "uid", "event__event_id", "appointment__guid", "appointment__appointment_no",
        "appointment__job_no", "appointment__task_no",
    )
    # No date_hierarchy: on SQLite it evaluates a date function per row (370 ms at 100,000
    # dispatches, docs/BENCHMARKS.md); /dispatches/ has an indexed time range filter instead.
    show_full_result_count = False  # one COUNT less on a large log
    actions = ("retry_dispatches",)
    fieldsets = (
        ("Dispatch", {"fields": (
            "uid", "status_badge", "action", "connector", "appointment", "event",
            "superseded_by", "created_at",
        )}),
        ("Delivery", {"fields": (
            "attempts", "next_attempt_at", "delivered_at", "lease_owner", "lease_until",
            "last_status_code", "last_error", "last_hint", "updated_at",
        )}),
        ("Payload", {"fields": ("payload_pretty",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dispatch]:
        # The list needs neither the payloads nor the connectors' secrets (decrypted on load).
        return (
            super().get_queryset(request)
            .select_related("connector", "appointment", "event")
            .defer("payload", *(f"connector__{name}" for name in CONNECTOR_SECRETS))
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Dispatch) -> SafeString:
        return format_html(
            '<span class="dc-status {}">{}</span>',
            status_class(obj.status),
            obj.get_status_display(),
        )

    @admin.display(description="appointment", ordering="appointment__appointment_no")
    def appointment_label(self, obj: Dispatch) -> str:
        appointment = obj.appointment
        label = appointment.appointment_no or str(appointment.appointment_id or appointment.guid)
        parts = [p for p in (appointment.job_no, appointment.task_no) if p]
        return f"{label} ({' / '.join(parts)})" if parts else label

    @admin.display(description="last error")
    def last_error_short(self, obj: Dispatch) -> SafeString | str:
        if not obj.last_error:
            return ""
        short = Truncator(obj.last_error).chars(80)
        return format_html('<span title="{}">{}</span>', obj.last_error, short)

    @admin.display(description="payload")
    def payload_pretty(self, obj: Dispatch) -> SafeString:
        return pretty_json(obj.payload)

    @admin.action(description="Retry selected dispatches")
    def retry_dispatches(self, request: HttpRequest, queryset: QuerySet[Dispatch]) -> None:
        # Offered to every viewer, refused here: a user without the permission learns which
        # one they need instead of not finding the action.
        if not request.user.has_perm(RETRY_PERMISSION):
            self.message_user(
                request,
                "Nothing was retried: retrying dispatches needs the permission "
                f"“Can retry a dispatch” ({RETRY_PERMISSION}).",
                messages.ERROR,
            )
            return
        selected = list(queryset.values_list("pk", flat=True))
        retried = delivery.dispatches_retry(selected, user=request.user)
        summary = f"Retrying {retried} dispatch(es) now"
        if skipped := len(selected) - retried:
            summary += f"; skipped {skipped} that were being sent or had succeeded"
        self.message_user(
            request, summary + ".", messages.SUCCESS if retried else messages.WARNING
        )


# --- Quarantine (shown on the connector admin, connectors/admin.py) ------------------------


def quarantined_connectors() -> list[Connector]:
    """Quarantined connectors, longest first, each with `held`: its open dispatch count."""
    return list(
        Connector.objects.filter(quarantined_at__isnull=False)
        .annotate(held=Count("dispatches", filter=Q(dispatches__status__in=OPEN_STATUSES)))
        .order_by("quarantined_at", "name")
    )


def held_dispatch_count(connector: Connector) -> int:
    return connector.dispatches.filter(status__in=OPEN_STATUSES).count()


def connectors_resume(
    connectors: QuerySet[Connector], *, user: Any
) -> tuple[int, int, int]:
    """Resume each quarantined connector of `connectors` (delivery.connector_resume).

    Returns (resumed connectors, dispatches now due, selected connectors not quarantined).
    """
    quarantined = list(connectors.filter(quarantined_at__isnull=False))
    due = sum(delivery.connector_resume(connector, user=user) for connector in quarantined)
    return len(quarantined), due, connectors.count() - len(quarantined)
