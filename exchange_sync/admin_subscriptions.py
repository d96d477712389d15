"""Admin for the inbound side's Graph subscriptions (with "renew now" and "recreate") and the
notifications Graph posted (read-only). Imported by exchange_sync/admin.py, which registers
nothing of these itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from connectors.admin_pipeline import ReadOnlyAdmin, pretty_json

from .models import Notification, Subscription
from .subscriptions import RENEW_BEFORE, subscription_recreate, subscription_renew


def expires_in_html(expires_at: Any, *, now: Any = None) -> SafeString:
    """"in N h" (red when fewer than RENEW_BEFORE remain, "expired" when past)."""
    left: timedelta = expires_at - (now or timezone.now())
    hours = left.total_seconds() / 3600
    if hours <= 0:
        return format_html('<span style="color:#ba2121">expired</span>')
    text = f"in {hours:.0f} h" if hours >= 1 else f"in {left.total_seconds() / 60:.0f} min"
    if left < RENEW_BEFORE:
        return format_html('<span style="color:#ba2121">{}</span>', text)
    return format_html("<span>{}</span>", text)


class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ("resource", "subscription_id", "expires_at", "expires_in", "renewed_at",
                    "last_notification_at", "error_short")
    list_filter = ("resource__source_app",)
    search_fields = ("subscription_id", "resource__resource_no", "resource__email")
    list_select_related = ("resource",)
    fields = ("resource", "subscription_id", "resource_path", "expires_at", "expires_in",
              "created_at", "renewed_at", "last_notification_at", "last_error")
    actions = ["renew_now", "recreate"]

    def has_manage_permission(self, request: HttpRequest) -> bool:
        """The actions (they change subscriptions at Graph); the form stays read-only."""
        return bool(request.user.has_perm("exchange_sync.change_subscription"))

    @admin.display(description="expires")
    def expires_in(self, obj: Subscription) -> SafeString:
        return expires_in_html(obj.expires_at)

    @admin.display(description="last error")
    def error_short(self, obj: Subscription) -> str:
        return Truncator(obj.last_error).chars(80) or "–"

    def _run(self, request: HttpRequest, queryset: QuerySet[Subscription], verb: str,
             service: Callable[..., bool]) -> None:
        rows = list(queryset.select_related("resource"))
        ok = sum(1 for subscription in rows if service(subscription=subscription))
        failed = len(rows) - ok
        text = f"{ok} subscription(s) {verb}."
        if failed:
            text += f" {failed} failed: see their last error and the sync log."
        self.message_user(request, text, messages.WARNING if failed else messages.SUCCESS)

    @admin.action(description="Renew now", permissions=["manage"])
    def renew_now(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._run(request, queryset, "renewed", subscription_renew)

    @admin.action(description="Recreate (new subscription, then a full delta round)",
                  permissions=["manage"])
    def recreate(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        self._run(request, queryset, "recreated", subscription_recreate)


class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "kind", "change_type", "subscription_link", "processed")
    list_filter = ("kind", "change_type")
    search_fields = ("subscription_id_text", "resource_path")
    list_select_related = ("subscription__resource",)
    date_hierarchy = "received_at"
    fields = ("received_at", "kind", "change_type", "subscription", "subscription_id_text",
              "resource_path", "processed_at", "payload_json")

    @admin.display(description="subscription", ordering="subscription_id_text")
    def subscription_link(self, obj: Notification) -> str:
        if obj.subscription is None:
            return f"{obj.subscription_id_text} (removed)"
        return str(obj.subscription.resource)

    @admin.display(description="processed", boolean=True)
    def processed(self, obj: Notification) -> bool:
        return obj.processed_at is not None

    @admin.display(description="payload")
    def payload_json(self, obj: Notification) -> SafeString:
        return pretty_json(obj.payload)


admin.site.register(Subscription, SubscriptionAdmin)
admin.site.register(Notification, NotificationAdmin)
