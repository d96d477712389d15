"""Admin for the inbound sync state of each mailbox (MailboxState): the delta round state
(due, lock, last round, errors) and the mass-deletion guard's held deletions, with actions to
confirm or discard them and to run a round (or a full round) now.

Every field is read-only; the actions need the "change mailbox state" permission. Imported by
exchange_sync/admin.py (registering MailboxStateAdmin on the default site).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.timesince import timesince

from connectors.admin_pipeline import pretty_json

from .inbound import (
    MailboxBusy,
    held_deletions_confirm,
    held_deletions_discard,
    schedule_round,
)
from .models import EventLink, MailboxState


@admin.register(MailboxState)
class MailboxStateAdmin(admin.ModelAdmin):
    list_display = ("resource", "last_round", "last_round_ok", "round_due_at",
                    "full_round_needed", "held_count", "error_short")
    list_filter = ("last_round_ok", "full_round_needed")
    search_fields = ("resource__resource_no", "resource__name", "resource__email")
    list_select_related = ("resource",)
    actions = ("confirm_held_deletions", "discard_held_deletions", "run_round_now",
               "run_full_round_now")
    fieldsets = (
        ("Mailbox", {"fields": ("resource",)}),
        ("Delta rounds", {"fields": (
            "last_round_at", "last_round_ok", "last_error", "last_full_round_at",
            "round_due_at", "full_round_needed", "lock", "window", "has_delta_link",
        )}),
        ("Held deletions", {
            "description": "A round that would delete many appointments at once holds them "
            "here: confirm to delete them, or discard to keep them (DimeConnect's own events "
            "are then created again in Outlook).",
            "fields": ("held_at", "held_reason", "held_appointments"),
        }),
    )

    class Media:
        css = {"all": ("connectors/admin.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [name for _, options in self.fieldsets for name in options["fields"]]

    # -- columns and fields --------------------------------------------------------------------
    @admin.display(description="last round", ordering="last_round_at")
    def last_round(self, obj: MailboxState) -> str:
        if obj.last_round_at is None:
            return "never"
        return f"{timesince(obj.last_round_at, timezone.now())} ago"

    @admin.display(description="held deletions")
    def held_count(self, obj: MailboxState) -> int:
        return len(obj.held_deletions or [])

    @admin.display(description="last error")
    def error_short(self, obj: MailboxState) -> str:
        return Truncator(obj.last_error).chars(80) or "–"

    @admin.display(description="round lock")
    def lock(self, obj: MailboxState) -> str:
        if obj.round_lock_until is None or obj.round_lock_until < timezone.now():
            return "free"
        return f"held by {obj.round_owner} until {obj.round_lock_until:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="sync window")
    def window(self, obj: MailboxState) -> str:
        if obj.window_start is None or obj.window_end is None:
            return "– (no full round yet)"
        return f"{obj.window_start:%Y-%m-%d} – {obj.window_end:%Y-%m-%d}"

    @admin.display(description="delta link stored", boolean=True)
    def has_delta_link(self, obj: MailboxState) -> bool:
        return bool(obj.delta_link)

    @admin.display(description="held appointments")
    def held_appointments(self, obj: MailboxState) -> Any:
        links = EventLink.objects.filter(pk__in=list(obj.held_deletions or [])).select_related(
            "appointment")
        return pretty_json([
            {"link": link.pk, "origin": link.origin, "appointment": str(link.appointment),
             "guid": str(link.appointment.guid), "start": link.appointment.data.get("start")}
            for link in links
        ]) if links else "–"

    # -- actions -------------------------------------------------------------------------------
    def _decide(self, request: HttpRequest, queryset: QuerySet[MailboxState], *,
                confirm: bool) -> None:
        done = busy = 0
        for state in queryset.select_related("resource"):
            if not state.held_deletions:
                continue
            try:
                if confirm:
                    done += held_deletions_confirm(state=state, user=request.user)
                else:
                    done += held_deletions_discard(state=state, user=request.user)
            except MailboxBusy:
                busy += 1
        verb = "Deleted" if confirm else "Kept"
        text = f"{verb} {done} held appointment(s)."
        if busy:
            text += f" {busy} mailbox(es) were busy with a delta round: try again in a minute."
        self.message_user(request, text, messages.WARNING if busy else messages.SUCCESS)

    @admin.action(description="Confirm held deletions (delete the appointments)",
                  permissions=["change"])
    def confirm_held_deletions(self, request: HttpRequest,
                               queryset: QuerySet[MailboxState]) -> None:
        self._decide(request, queryset, confirm=True)

    @admin.action(description="Discard held deletions (keep the appointments)",
                  permissions=["change"])
    def discard_held_deletions(self, request: HttpRequest,
                               queryset: QuerySet[MailboxState]) -> None:
        self._decide(request, queryset, confirm=False)

    @admin.action(description="Run a delta round now", permissions=["change"])
    def run_round_now(self, request: HttpRequest, queryset: QuerySet[MailboxState]) -> None:
        ids = list(queryset.values_list("resource_id", flat=True))
        for resource_id in ids:
            schedule_round(resource_id, delay_s=0)
        self.message_user(request, f"Queued a delta round for {len(ids)} mailbox(es).",
                          messages.SUCCESS)

    @admin.action(description="Run a full round now (read the whole window again)",
                  permissions=["change"])
    def run_full_round_now(self, request: HttpRequest,
                           queryset: QuerySet[MailboxState]) -> None:
        ids = list(queryset.values_list("resource_id", flat=True))
        for resource_id in ids:
            schedule_round(resource_id, full=True, delay_s=0)
        self.message_user(request, f"Queued a full round for {len(ids)} mailbox(es).",
                          messages.SUCCESS)
