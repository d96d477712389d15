"""Admin for Exchange sync: the settings (one row), resources with their privacy filters and
outbound rules (with a preview), and the sync state, read-only (links, queue, log).

The settings' client secret is write-only (the connectors' SecretField); "Test connection"
runs `exchange_sync.connection.exchange_test_connection` and shows its steps. The rules preview
evaluates the saved rules on the change page, and the rules in the form (unsaved) through the
"Preview" button: a POST to `preview/` that answers a page (no JavaScript needed) or, asked by
resource_form.js, the same table as a fragment shown under the button.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import Count, Max, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.timesince import timesince

from connectors.admin_pipeline import ReadOnlyAdmin, pretty_json
from connectors.forms import secret_status

from . import admin_mailboxes, admin_services, admin_subscriptions, services  # noqa: F401
from .connection import exchange_test_connection
from .forms import ExchangeSettingsAdminForm, OutboundRuleForm
from .models import (
    EventLink,
    ExchangeSettings,
    OutboundRule,
    PendingSync,
    Resource,
    Sensitivity,
    ShowAs,
    SyncLogEntry,
)
from .models.settings import SINGLETON_PK

FRAGMENT_HEADER = "X-DC-Fragment"  # resource_form.js asks for the preview table only
SUMMARY_LIMIT = 90


def _labels(codes: list[str], choices: type[ShowAs] | type[Sensitivity]) -> str:
    names = dict(choices.choices)
    return ", ".join(str(names.get(code, code)) for code in codes) or "nothing"


def test_steps_html(result: dict[str, Any]) -> str:
    """A stored test result's steps as the connectors' step table (name, ok, ms, detail, hint)."""
    steps = (result or {}).get("steps") or []
    if not steps:
        return "–"
    return render_to_string("admin/connectors/connector/test_steps.html", {"steps": steps})


# --- Settings (one row) ----------------------------------------------------------------------


@admin.register(ExchangeSettings)
class ExchangeSettingsAdmin(admin.ModelAdmin):
    form = ExchangeSettingsAdminForm
    change_form_template = "admin/exchange_sync/exchangesettings/change_form.html"
    readonly_fields = ("status", "last_tested_at", "last_test_message", "last_test_steps",
                       "updated_at", "client_secret_status")
    fieldsets = (
        ("Connection", {
            "fields": ("enabled", "tenant_id", "client_id", "client_secret", "test_mailbox",
                       "timeout_s"),
            "description": "The Entra app registration that reads and writes the mailboxes "
            "(Microsoft Graph application permission Calendars.ReadWrite, with admin consent). "
            "The client secret is stored encrypted and never shown again: leave it blank to "
            "keep it, tick “clear” to remove it.",
        }),
        ("Sync window", {"fields": ("window_past_days", "window_future_days")}),
        ("Privacy (global default)", {
            "fields": ("shared_show_as", "shared_sensitivities"),
            "description": "Which Outlook events are shared with the planner, for every "
            "resource without its own privacy filters.",
        }),
        ("Inbound timing and safety", {
            "fields": ("debounce_s", "safety_round_minutes", "mass_delete_percent",
                       "mass_delete_minimum"),
        }),
        ("Status", {"fields": ("status", "last_tested_at", "last_test_message",
                               "last_test_steps", "updated_at")}),
    )

    class Media:
        css = {"all": ("connectors/admin.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        # One row, created by the changelist on the first visit (ExchangeSettings.load()).
        # Deciding this without a query matters: the admin asks on every page's navigation.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fieldsets(self, request: HttpRequest, obj: ExchangeSettings | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return [fieldset for fieldset in fieldsets if fieldset[0] != "Status"]
        if not self.has_change_permission(request, obj):
            # A read-only page renders each field's value: show the secret's status instead.
            return [(name, {**options, "fields": tuple(
                "client_secret_status" if field == "client_secret" else field
                for field in options["fields"])}) for name, options in fieldsets]
        return fieldsets

    @admin.display(description="client secret")
    def client_secret_status(self, obj: ExchangeSettings) -> str:
        return secret_status(obj.client_secret)

    def changelist_view(self, request: HttpRequest,
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """There is one row: go to it (created with the defaults on the first visit)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        settings = ExchangeSettings.load()
        return HttpResponseRedirect(
            reverse("admin:exchange_sync_exchangesettings_change", args=[settings.pk])
        )

    def save_model(self, request: HttpRequest, obj: ExchangeSettings, form: Any,
                   change: bool) -> None:
        if not change:
            obj.pk = SINGLETON_PK  # the one row, whichever way it is created
        was_enabled = ExchangeSettings.objects.filter(pk=obj.pk, enabled=True).exists()
        super().save_model(request, obj, form, change)
        services.exchange_settings_changed(exchange=obj, was_enabled=was_enabled)

    @admin.display(description="status")
    def status(self, obj: ExchangeSettings) -> str:
        if obj.last_test_ok is None or obj.last_tested_at is None:
            return format_html('<span class="dc-status dc-unknown">{}</span>', "not tested yet")
        ago = timesince(obj.last_tested_at, timezone.now()).split(",")[0]
        if obj.last_test_ok:
            return format_html(
                '<span class="dc-status dc-ok">connection OK</span> <small>{} ago</small>', ago)
        return format_html(
            '<span class="dc-status dc-fail" title="{}">failing</span> <small>{} ago</small>',
            obj.last_test_message, ago)

    @admin.display(description="last test, step by step")
    def last_test_steps(self, obj: ExchangeSettings) -> str:
        return test_steps_html(obj.last_test_result)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.test_connection_view)
        return [
            path("<path:object_id>/test-connection/", view,
                 name="exchange_sync_exchangesettings_test"),
            *super().get_urls(),
        ]

    def test_connection_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: run "test connection" and show its steps (stored on the settings row)."""
        settings = self.get_object(request, object_id)
        if settings is None:
            raise Http404(f"No Exchange settings with ID {object_id!r}.")
        if not self.has_change_permission(request, settings):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        result = exchange_test_connection(exchange_settings=settings)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": settings,
            "result": result,
            "title": "Test connection: Exchange (Microsoft Graph)",
        }
        return TemplateResponse(
            request, "admin/exchange_sync/exchangesettings/test_result.html", context
        )


# --- Resources and their rules ---------------------------------------------------------------


class OutboundRuleInline(admin.TabularInline):
    model = OutboundRule
    form = OutboundRuleForm
    extra = 1
    fields = ("position", "field", "operator", "value")
    verbose_name = "outbound rule"
    verbose_name_plural = "outbound rules (which appointments go to Outlook)"


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin):
    change_form_template = "admin/exchange_sync/resource/change_form.html"
    inlines = (OutboundRuleInline,)
    list_display = ("source_app", "resource_no", "name", "email", "sync_enabled",
                    "rules_summary", "linked_events", "last_sync")
    list_display_links = ("source_app", "resource_no")
    list_filter = ("source_app", "sync_enabled")
    search_fields = ("source_app", "resource_no", "name", "email")
    list_select_related = ("mailbox_state",)
    list_per_page = 50
    actions = ("enable_sync", "disable_sync")
    readonly_fields = ("global_privacy", "graph_user_id", "created_at", "updated_at")
    fieldsets = (
        ("Resource", {"fields": ("source_app", "resource_no", "name", "email",
                                 "sync_enabled")}),
        ("Privacy (what is shared with the planner)", {
            "fields": ("privacy_override", "shared_show_as", "shared_sensitivities",
                       "global_privacy"),
            "description": "Which of the resource's Outlook events reach the planner. Private "
            "and confidential events, when shared, arrive as busy blocks without details.",
        }),
        ("Outbound rules", {
            "fields": ("rule_match",),
            "description": "Which of the resource's appointments go to its Outlook calendar: "
            "the rules below (field, operator, value) combine as chosen here. Text compares "
            "ignore case; “is one of” takes a comma-separated list; dates and times are "
            "ISO 8601 (e.g. 2026-11-21T09:00:00Z). A field value is field_values.<name>.",
        }),
        ("Status", {"fields": ("graph_user_id", "created_at", "updated_at")}),
    )

    class Media:
        js = ("exchange_sync/resource_form.js",)
        css = {"all": ("connectors/admin.css", "exchange_sync/admin.css")}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Resource]:
        return (
            super().get_queryset(request)
            .annotate(linked_count=Count("links", distinct=True),
                      last_link_sync=Max("links__synced_at"))
            .prefetch_related("rules")
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any,
                     change: bool) -> None:
        # After the rules inline is saved: the appointments are re-evaluated against the
        # resource as it now is (sync, mailbox, rules, privacy) and pushed where they differ.
        super().save_related(request, form, formsets, change)
        services.resources_changed(resources=[form.instance])

    def get_readonly_fields(self, request: HttpRequest, obj: Resource | None = None) -> Any:
        fixed = ("source_app", "resource_no") if obj is not None else ()
        return (*fixed, *super().get_readonly_fields(request, obj))

    def get_fieldsets(self, request: HttpRequest, obj: Resource | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return [fieldset for fieldset in fieldsets if fieldset[0] != "Status"]
        return fieldsets

    @admin.display(description="rules")
    def rules_summary(self, obj: Resource) -> str:
        rules = list(obj.rules.all())
        if not rules:
            return "none (every appointment)"
        joined = "; ".join(str(rule) for rule in rules)
        text = f"{obj.rule_match} of {len(rules)}: {joined}" if len(rules) > 1 else joined
        return Truncator(text).chars(SUMMARY_LIMIT)

    @admin.display(description="linked events", ordering="linked_count")
    def linked_events(self, obj: Resource) -> int:
        return int(getattr(obj, "linked_count", 0) or 0)

    @admin.display(description="last sync", ordering="last_link_sync")
    def last_sync(self, obj: Resource) -> datetime | str:
        moments = [getattr(obj, "last_link_sync", None)]
        try:
            moments.append(obj.mailbox_state.last_round_at)
        except ObjectDoesNotExist:
            pass
        known = [moment for moment in moments if moment is not None]
        return max(known) if known else "–"

    @admin.display(description="global default")
    def global_privacy(self, obj: Resource) -> SafeString:
        settings = ExchangeSettings.objects.filter(pk=SINGLETON_PK).first() or ExchangeSettings()
        in_use = "in use" if not obj.privacy_override else "not in use: own filters are on"
        return format_html(
            '<span id="global-privacy">Show-as: {}. Sensitivities: {}.</span> <small>({})</small>',
            _labels(settings.shared_show_as, ShowAs),
            _labels(settings.shared_sensitivities, Sensitivity),
            in_use,
        )

    @admin.action(description="Turn sync on for the selected resources", permissions=["change"])
    def enable_sync(self, request: HttpRequest, queryset: QuerySet[Resource]) -> None:
        self._set_sync(request, queryset, enabled=True)

    @admin.action(description="Turn sync off for the selected resources", permissions=["change"])
    def disable_sync(self, request: HttpRequest, queryset: QuerySet[Resource]) -> None:
        self._set_sync(request, queryset, enabled=False)

    def _set_sync(self, request: HttpRequest, queryset: QuerySet[Resource], *,
                  enabled: bool) -> None:
        selected = queryset.count()
        changed = admin_services.resource_sync_set(queryset=queryset, enabled=enabled)
        summary = f"Turned sync {'on' if enabled else 'off'} for {changed} resource(s)"
        if selected - changed:
            summary += f"; {selected - changed} already had it {'on' if enabled else 'off'}"
        if enabled:
            without = queryset.filter(email="").count()
            if without:
                summary += (f". {without} of them have no mailbox email: nothing syncs until "
                            "one is set")
        self.message_user(request, summary + ".", messages.SUCCESS)

    # -- preview ------------------------------------------------------------------------------
    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any,
                           **kwargs: Any) -> HttpResponse:
        original = context.get("original")
        if original is not None and original.pk:
            context["rules_preview"] = admin_services.rules_preview(original)
        context["preview_url"] = reverse("admin:exchange_sync_resource_preview")
        context["preview_limit"] = admin_services.PREVIEW_LIMIT
        return super().render_change_form(request, context, *args, **kwargs)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.preview_view)
        return [path("preview/", view, name="exchange_sync_resource_preview"),
                *super().get_urls()]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """POST (the change form): the recent appointments evaluated with the form's rules,
        unsaved. `_preview` carries the resource's id when it exists."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        post = request.POST
        saved = None
        if str(post.get("_preview") or "").isdigit():
            saved = Resource.objects.filter(pk=int(post["_preview"])).first()
        draft = admin_services.draft_resource(post, saved)
        rules, errors = admin_services.posted_rules(post)
        preview = admin_services.rules_preview(draft, rules)
        preview.errors = errors
        context = {"preview": preview, "resource": draft, "unsaved": True}
        if request.headers.get(FRAGMENT_HEADER):
            return TemplateResponse(request, "admin/exchange_sync/resource/preview_table.html",
                                    context)
        context.update({
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": saved,
            "title": f"Preview outbound rules: {draft}",
        })
        return TemplateResponse(request, "admin/exchange_sync/resource/preview.html", context)


# --- Sync state, read-only -------------------------------------------------------------------


@admin.register(EventLink)
class EventLinkAdmin(ReadOnlyAdmin):
    list_display = ("appointment", "resource", "origin", "event_short", "change_key",
                    "generation", "synced_at")
    list_filter = ("origin", "resource__source_app")
    search_fields = ("appointment__guid", "appointment__appointment_no", "event_id")
    list_select_related = ("appointment", "resource")
    fields = ("appointment", "resource", "origin", "event_id", "change_key", "series_master_id",
              "generation", "content_hash", "planner_state_at", "outlook_modified_at",
              "synced_at", "created_at")

    @admin.display(description="event ID", ordering="event_id")
    def event_short(self, obj: EventLink) -> str:
        if not obj.event_id:
            return "(no event)"
        event = obj.event_id
        return event if len(event) <= 20 else f"{event[:8]}…{event[-8:]}"


@admin.register(PendingSync)
class PendingSyncAdmin(ReadOnlyAdmin):
    list_display = ("appointment", "version", "queued_at", "next_attempt_at", "attempts",
                    "error_short")
    search_fields = ("appointment__guid", "appointment__appointment_no")
    list_select_related = ("appointment",)
    fields = ("appointment", "version", "queued_at", "next_attempt_at", "claimed_until",
              "attempts", "last_error")

    @admin.display(description="last error")
    def error_short(self, obj: PendingSync) -> str:
        return Truncator(obj.last_error).chars(80) or "–"


@admin.register(SyncLogEntry)
class SyncLogEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "direction", "kind", "resource", "appointment", "message_short",
                    "hint_short")
    list_filter = ("direction", "kind")
    search_fields = ("message", "event_id")
    list_select_related = ("resource", "appointment")
    date_hierarchy = "at"
    fields = ("at", "direction", "kind", "resource", "appointment", "event_id", "message",
              "hint", "detail_json")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    @admin.display(description="message")
    def message_short(self, obj: SyncLogEntry) -> str:
        return Truncator(obj.message).chars(100)

    @admin.display(description="hint")
    def hint_short(self, obj: SyncLogEntry) -> str:
        return Truncator(obj.hint).chars(80) or "–"

    @admin.display(description="detail")
    def detail_json(self, obj: SyncLogEntry) -> SafeString:
        return pretty_json(obj.detail)
