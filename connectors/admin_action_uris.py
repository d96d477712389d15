"""Admin for action URIs (docs/ACTION_URIS.md), with a preview before saving, and the links an
appointment's admin page shows.

Preview: the change form's "Preview" button posts the form to `preview/`, which renders the
unsaved template for a stored appointment (GUID or appointment no) or the built-in sample.
Without JavaScript the answer is a page in a new tab; with it (action_uri_form.js) the same
view answers JSON and the result appears under the button.

A POST action URI cannot be a form inside the admin's own form, so its link goes to `open/`, a
page holding the form to send (never with our CSRF token) — which works anywhere.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from .action_uris import (
    DATABASE_ACTIONS,
    KNOWN,
    Preview,
    action_uri_preview,
    action_uris_for,
    appointment_values,
    render,
)
from .models import ActionUri, Appointment

# Who may open an appointment's POST action URI (the values are the appointment's data).
OPEN_PERMISSIONS = ("connectors.view_appointment", "connectors.view_dispatch")
PREVIEW_CHOICES = 30  # recent appointments suggested in the preview field


class PreviewAppointmentInput(forms.TextInput):
    """A GUID / appointment no input with recent appointments as suggestions, and the
    "Preview" button (a submit button that posts the form to the preview view instead)."""

    source_app = ""

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        list_id = f"{(attrs or {}).get('id', name)}-choices"
        field = super().render(name, value, {**(attrs or {}), "list": list_id}, renderer)
        recent = Appointment.objects.only("guid", "source_app", "appointment_no", "appointment_id")
        if self.source_app:
            recent = recent.filter(source_app=self.source_app)
        options = format_html_join(
            "", '<option value="{}">{}</option>', ((a.guid, a) for a in recent[:PREVIEW_CHOICES])
        )
        return format_html(
            '<div class="dc-preview">{} <datalist id="{}">{}</datalist>'
            '<button type="submit" name="_preview" class="button dc-preview-button" '
            'formaction="{}" formtarget="_blank" formnovalidate>Preview</button>'
            '<div class="dc-preview-result" aria-live="polite"></div></div>',
            field, list_id, options, reverse("admin:connectors_actionuri_preview"),
        )


class ActionUriAdminForm(forms.ModelForm):
    preview_appointment = forms.CharField(
        required=False,
        label="Preview with",
        widget=PreviewAppointmentInput(attrs={"size": 40, "placeholder": "the sample"}),
        help_text="A stored appointment's GUID or appointment no (of this source app), or blank "
        "for a built-in sample. “Preview” shows the URI before you save; nothing is stored.",
    )

    class Meta:
        model = ActionUri
        fields = (
            "source_app", "source_type", "url_type", "description", "template", "request_type",
            "is_default",
        )
        widgets = {"template": forms.TextInput(attrs={"size": 100})}
        help_texts = {
            "template": "An absolute http(s) URI. Placeholders (values are URL-encoded): "
            f"{KNOWN}.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        widget = self.fields["preview_appointment"].widget
        assert isinstance(widget, PreviewAppointmentInput)
        widget.source_app = self.instance.source_app or str(self.initial.get("source_app", ""))


@admin.register(ActionUri)
class ActionUriAdmin(admin.ModelAdmin):
    form = ActionUriAdminForm
    list_display = (
        "source_app", "source_type_label", "url_type", "label", "request_type", "is_default",
        "template_short",
    )
    list_display_links = ("source_app", "label")
    list_filter = ("source_app", "url_type", "request_type", "is_default")
    search_fields = ("source_app", "source_type", "description", "template")
    fieldsets = (
        ("Applies to", {"fields": ("source_app", "source_type")}),
        ("Action URI", {"fields": (
            "url_type", "description", "template", "request_type", "is_default",
        )}),
        ("Preview", {"fields": ("preview_appointment",)}),
    )

    class Media:
        js = ("connectors/action_uri_form.js",)
        css = {"all": ("connectors/admin.css", "connectors/action_uris.css")}

    @admin.display(description="source type", ordering="source_type")
    def source_type_label(self, obj: ActionUri) -> str:
        return obj.source_type or "(all types)"

    @admin.display(description="description", ordering="description")
    def label(self, obj: ActionUri) -> str:
        return obj.label

    @admin.display(description="template")
    def template_short(self, obj: ActionUri) -> str:
        return Truncator(obj.template).chars(70)

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("preview/", wrap(self.preview_view), name="connectors_actionuri_preview"),
            path(
                "<int:pk>/open/<int:appointment_pk>/",
                wrap(self.open_view),
                name="connectors_actionuri_open",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """POST (the change form's fields): the unsaved template rendered; JSON when asked."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        post = request.POST
        draft = ActionUri(
            **{name: post.get(name, "") for name in ("source_app", "source_type", "url_type",
                                                     "description", "template")},
            request_type=post.get("request_type") or "GET",
        )
        preview = action_uri_preview(
            draft, appointment_reference=post.get("preview_appointment", "")
        )
        if "application/json" in request.headers.get("Accept", ""):
            return JsonResponse(preview_json(preview))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Preview action URI",
            "preview": preview,
        }
        return TemplateResponse(request, "admin/connectors/actionuri/preview.html", context)

    def open_view(self, request: HttpRequest, pk: int, appointment_pk: int) -> HttpResponse:
        """A page with one rendered action URI of an appointment: a link for GET, the form to
        send for POST (`?action=` fills #DATABASEACTION# as the dispatch log passes it)."""
        if not any(request.user.has_perm(perm) for perm in OPEN_PERMISSIONS):
            raise PermissionDenied
        action_uri = get_object_or_404(ActionUri, pk=pk)
        appointment = get_object_or_404(Appointment, pk=appointment_pk)
        action = request.GET.get("action") or None
        if action not in (None, *DATABASE_ACTIONS):
            action = None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{action_uri.label}: {appointment}",
            "appointment": appointment,
            "rendered": render(action_uri, appointment_values(appointment, action=action)),
        }
        return TemplateResponse(request, "admin/connectors/actionuri/open.html", context)


def preview_json(preview: Preview) -> dict[str, Any]:
    rendered = preview.rendered
    return {
        "ok": rendered is not None,
        "errors": preview.errors,
        "appointment": preview.appointment,
        "uri": rendered.uri if rendered else None,
        "request_type": rendered.request_type if rendered else None,
        "form_fields": rendered.form_fields if rendered else {},
    }


def action_uri_links(appointment: Appointment, *, action: str | None = None) -> SafeString:
    """The appointment's action URIs as links (HTML), for its admin page and the dispatch log:
    GET opens the URI; POST opens the page that sends the form."""
    context = {
        "appointment": appointment,
        "action_uris": action_uris_for(appointment, action=action),
        "action": action or "",
    }
    return SafeString(render_to_string("admin/connectors/actionuri/links.html", context))
