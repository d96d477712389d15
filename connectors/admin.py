"""Admin for connectors and API clients (administrators' screens)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Field, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from . import admin_action_uris, admin_pipeline, compat, services  # noqa: F401 (registers)
from .backoffices.signing import ROTATION_OVERLAP
from .forms import ApiClientAdminForm, ConnectorAdminForm, secret_status
from .models import SECRET_FIELDS, ApiClient, Connector


def connector_rules() -> dict[str, Any]:
    """What the change form's JavaScript needs to show the right fields and choices."""
    return {
        "apiTypes": compat.API_TYPES,
        "authTypes": compat.AUTH_TYPES,
        "soapOnlyAuthTypes": compat.SOAP_ONLY_AUTH_TYPES,
        "authFields": {
            auth: list(required + optional)
            for auth, (required, optional) in compat.AUTH_FIELDS.items()
        },
        "typeOnlyFields": compat.TYPE_ONLY_FIELDS,
        # What a type-only choice goes back to when the chosen type does not use it.
        "typeOnlyDefaults": {
            name: _default_of(name) for name in compat.TYPE_ONLY_FIELDS if name not in SECRET_FIELDS
        },
    }


def _default_of(name: str) -> Any:
    field = Connector._meta.get_field(name)
    assert isinstance(field, Field)
    return field.get_default()


# Each test may take up to its connector's timeout (≤30 s): bound what one request can start.
MAX_BULK_TESTS = 10


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    form = ConnectorAdminForm
    change_form_template = "admin/connectors/connector/change_form.html"
    list_display = (
        "name", "type", "source_app", "enabled", "api_type", "auth_type", "status",
    )
    list_filter = ("type", "enabled", "auth_type", "source_app")
    search_fields = ("name", "source_app", "uri")
    list_per_page = 50
    actions = (
        "test_connections", "enable_connectors", "disable_connectors", "rotate_signing_secrets",
        "resume_quarantined_connectors",
    )
    readonly_fields = (
        "status", "last_tested_at", "last_test_message", "last_test_steps", "created_at",
        "updated_at", "password_status", "client_secret_status", "signing_secret_status",
    )
    fieldsets = (
        ("Basic info", {"fields": ("name", "description")}),
        (
            "Connector info",
            {
                "fields": (
                    "type", "enabled", "uri", "api_type", "source_app", "source_type",
                    "crud_types", "payload_style", "timeout_s", "retry_schedule",
                )
            },
        ),
        (
            "Authentication info",
            {
                "fields": (
                    "auth_type", "login", "password", "tenant_id", "client_id",
                    "client_secret", "token_url", "scope", "signing_secret",
                ),
                "description": "Only the fields the chosen authentication uses are shown. "
                "Secrets are stored encrypted and never shown again: leave a secret blank to "
                "keep it, tick “clear” to remove it.",
            },
        ),
        (
            "Status",
            {"fields": ("status", "last_tested_at", "last_test_message", "last_test_steps",
                        "created_at", "updated_at")},
        ),
    )

    class Media:
        js = ("connectors/connector_form.js",)
        css = {"all": ("connectors/admin.css",)}

    def get_fieldsets(self, request: HttpRequest, obj: Connector | None = None) -> Any:
        # A connector being added has no status yet: a group of dashes only adds noise.
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return [fieldset for fieldset in fieldsets if fieldset[0] != "Status"]
        if not self.has_change_permission(request, obj):
            # A view-only page renders every field's value: show each secret's status instead.
            return [(name, {**options, "fields": tuple(
                f"{field}_status" if field in SECRET_FIELDS else field
                for field in options["fields"])}) for name, options in fieldsets]
        return fieldsets

    @admin.display(description="password")
    def password_status(self, obj: Connector) -> str:
        return secret_status(obj.password)

    @admin.display(description="client secret")
    def client_secret_status(self, obj: Connector) -> str:
        return secret_status(obj.client_secret)

    @admin.display(description="signing secret")
    def signing_secret_status(self, obj: Connector) -> str:
        return secret_status(obj.signing_secret)

    @admin.display(description="status")
    def status(self, obj: Connector) -> str:
        if not obj.pk:
            return "–"
        badges = (  # after the test state: disabled, quarantined
            format_html(' <span class="dc-status dc-off">{}</span>', "disabled")
            if not obj.enabled
            else ""
        )
        if obj.quarantined_at:
            badges = format_html(
                '{} <span class="dc-status dc-fail dc-quarantined" title="{}">quarantined</span>',
                badges,
                obj.quarantine_reason,
            )
        if obj.last_test_ok is None or obj.last_tested_at is None:
            return format_html(
                '<span class="dc-status dc-unknown">{}</span>{}', "not tested yet", badges
            )
        ago = timesince(obj.last_tested_at, timezone.now()).split(",")[0]
        if obj.last_test_ok:
            return format_html(
                '<span class="dc-status dc-ok">connection OK</span>{} <small>{} ago</small>',
                badges,
                ago,
            )
        return format_html(
            '<span class="dc-status dc-fail" title="{}">failing</span>{} <small>{} ago</small>',
            obj.last_test_message,
            badges,
            ago,
        )

    @admin.display(description="last test, step by step")
    def last_test_steps(self, obj: Connector) -> str:
        steps = (obj.last_test_result or {}).get("steps") or []
        if not steps:
            return "–"
        return render_to_string("admin/connectors/connector/test_steps.html", {"steps": steps})

    def save_model(self, request: HttpRequest, obj: Connector, form: Any, change: bool) -> None:
        services.connector_prepare(obj)
        super().save_model(request, obj, form, change)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        context["connector_rules"] = connector_rules()
        original = context.get("original")
        if original is not None and original.quarantined_at:
            context["quarantine_held"] = admin_pipeline.held_dispatch_count(original)
        return super().render_change_form(request, context, *args, **kwargs)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "quarantined_connectors": admin_pipeline.quarantined_connectors(),
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.test_connection_view)
        return [
            path("<path:object_id>/test-connection/", view, name="connectors_connector_test"),
            *super().get_urls(),
        ]

    def test_connection_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: run "test connection" for one connector and show its steps."""
        connector = self.get_object(request, object_id)
        if connector is None:
            raise Http404(f"No connector with ID {object_id!r}.")
        if not self.has_change_permission(request, connector):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        result = services.connector_test_connection(connector)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": connector,
            "result": result,
            "title": f"Test connection: {connector.name}",
        }
        return TemplateResponse(request, "admin/connectors/connector/test_result.html", context)

    @admin.action(description="Test connection of selected connectors", permissions=["change"])
    def test_connections(self, request: HttpRequest, queryset: QuerySet[Connector]) -> None:
        failing = []
        results = [(c, services.connector_test_connection(c)) for c in queryset[:MAX_BULK_TESTS]]
        for connector, result in results:
            if not result.ok:
                failing.append(f"{connector.name} ({result.message})")
        skipped = max(0, queryset.count() - MAX_BULK_TESTS)
        summary = f"Tested {len(results)} connector(s): {len(results) - len(failing)} OK"
        if failing:
            summary += f", {len(failing)} failing: " + "; ".join(failing)
        if skipped:
            summary += f". {skipped} not tested (at most {MAX_BULK_TESTS} at a time)"
        self.message_user(request, summary + ".", messages.ERROR if failing else messages.SUCCESS)

    @admin.action(description="Enable selected connectors", permissions=["change"])
    def enable_connectors(self, request: HttpRequest, queryset: QuerySet[Connector]) -> None:
        count = services.connectors_set_enabled(queryset, enabled=True)
        self.message_user(request, f"Enabled {count} connector(s).", messages.SUCCESS)

    @admin.action(description="Disable selected connectors", permissions=["change"])
    def disable_connectors(self, request: HttpRequest, queryset: QuerySet[Connector]) -> None:
        count = services.connectors_set_enabled(queryset, enabled=False)
        self.message_user(request, f"Disabled {count} connector(s).", messages.SUCCESS)

    @admin.action(description="Resume quarantined connectors", permissions=["change"])
    def resume_quarantined_connectors(
        self, request: HttpRequest, queryset: QuerySet[Connector]
    ) -> None:
        resumed, due, skipped = admin_pipeline.connectors_resume(queryset, user=request.user)
        summary = f"Resumed {resumed} quarantined connector(s); {due} held dispatch(es) are due now"
        if skipped:
            summary += f". {skipped} selected connector(s) were not quarantined"
        self.message_user(
            request, summary + ".", messages.SUCCESS if resumed else messages.WARNING
        )

    @admin.action(description="Rotate webhook signing secret", permissions=["change"])
    def rotate_signing_secrets(
        self, request: HttpRequest, queryset: QuerySet[Connector]
    ) -> HttpResponse | None:
        webhooks = list(queryset.filter(type=compat.ConnectorType.WEBHOOK))
        skipped = queryset.count() - len(webhooks)
        for connector in webhooks:
            services.webhook_rotate_signing_secret(connector)
        summary = f"Rotated the signing secret of {len(webhooks)} webhook connector(s)"
        if webhooks:
            summary += "; each old secret keeps signing beside the new one for 24 hours"
        if skipped:
            summary += f". Skipped {skipped} connector(s) that are not webhooks"
        self.message_user(
            request, summary + ".", messages.SUCCESS if webhooks else messages.WARNING
        )
        if not webhooks:
            return None
        # Receivers need the new secret to verify signatures, and it is never shown again:
        # the answer to this POST shows it once, like a new API key.
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "rows": [
                (c, c.signing_secret_rotated_at + ROTATION_OVERLAP
                 if c.previous_signing_secret and c.signing_secret_rotated_at else None)
                for c in webhooks
            ],
            "title": "New webhook signing secrets",
        }
        response = TemplateResponse(
            request, "admin/connectors/connector/signing_secrets_once.html", context
        )
        response["Cache-Control"] = "no-store"
        return response


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = ApiClientAdminForm
    list_display = ("name", "key_hint", "allowed_source_apps", "is_active", "created_at",
                    "last_used_at")
    list_filter = ("is_active",)
    search_fields = ("name", "key_prefix")
    readonly_fields = ("key_hint", "created_at", "last_used_at")
    actions = ("issue_new_key",)

    @admin.display(description="key")
    def key_hint(self, obj: ApiClient) -> str:
        return f"{obj.key_prefix}…" if obj.key_prefix else "–"

    @admin.display(description="allowed source apps")
    def allowed_source_apps(self, obj: ApiClient) -> str:
        return ", ".join(obj.source_apps)

    def get_fields(self, request: HttpRequest, obj: ApiClient | None = None) -> Any:
        if obj is None:
            return ["name", "source_apps", "is_active"]
        return ["name", "key_hint", "source_apps", "is_active", "created_at", "last_used_at"]

    def save_model(self, request: HttpRequest, obj: ApiClient, form: Any, change: bool) -> None:
        if not change:
            # Kept on the request only: the key is rendered once, in the response to this POST.
            request.dimeconnect_new_key = services.api_client_assign_key(obj)  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: ApiClient, post_url_continue: str | None = None
    ) -> HttpResponse:
        key = getattr(request, "dimeconnect_new_key", None)
        if key is None:  # pragma: no cover - save_model always sets it on add
            return super().response_add(request, obj, post_url_continue)
        return self._show_key(request, obj, key, created=True)

    def _show_key(
        self, request: HttpRequest, client: ApiClient, key: str, *, created: bool
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "client": client,
            "api_key": key,
            "created": created,
            "title": f"API key for {client.name}",
        }
        response = TemplateResponse(request, "admin/connectors/apiclient/key_once.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Issue a new key (the old one stops working)",
                  permissions=["change"])
    def issue_new_key(
        self, request: HttpRequest, queryset: QuerySet[ApiClient]
    ) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(
                request, "Select exactly one API client to issue a new key for.", messages.ERROR
            )
            return None
        client = queryset.get()
        key = services.api_client_rotate_key(client)
        return self._show_key(request, client, key, created=False)
