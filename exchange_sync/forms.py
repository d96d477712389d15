"""Admin forms of Exchange sync: the settings (write-only client secret) and outbound rules.

The secret widgets are the connectors' (`connectors.forms.SecretField`): the page shows only
"set · ends in …abcd"; blank keeps the stored secret, a new value replaces it, "clear" removes it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from connectors.forms import SecretField, SecretInput, SecretInputValue

from .models import ExchangeSettings, OutboundRule
from .rules import FIELD_VALUES_PREFIX, FIELDS, validate_rule

SETTINGS_SECRETS = ("client_secret",)


def resolve_secrets(form: forms.ModelForm, data: dict[str, Any],
                    names: tuple[str, ...]) -> dict[str, Any]:
    """Turn each secret input of `data` into the value to store: new, cleared, or current."""
    for name in names:
        value = data.get(name)
        if isinstance(value, SecretInputValue):
            current = getattr(form.instance, name) or ""
            data[name] = value.new or ("" if value.clear else current)
    return data


class ExchangeSettingsAdminForm(forms.ModelForm):
    class Meta:
        model = ExchangeSettings
        fields = (
            "enabled", "tenant_id", "client_id", "client_secret", "test_mailbox", "timeout_s",
            "window_past_days", "window_future_days", "shared_show_as", "shared_sensitivities",
            "debounce_s", "safety_round_minutes", "mass_delete_percent", "mass_delete_minimum",
        )
        field_classes = {name: SecretField for name in SETTINGS_SECRETS}
        widgets = {
            "client_secret": SecretInput(empty_hint="the application's client secret"),
            "tenant_id": forms.TextInput(attrs={"size": 40}),
            "client_id": forms.TextInput(attrs={"size": 40}),
        }
        help_texts = {
            "tenant_id": "The Entra (Azure AD) tenant of the mailboxes: its GUID or a domain "
            "such as contoso.onmicrosoft.com.",
            "client_id": "The application (client) ID of the app registration that has the "
            "Microsoft Graph application permission Calendars.ReadWrite.",
            "client_secret": "Stored encrypted and never shown again.",
        }

    def clean(self) -> dict[str, Any]:
        return resolve_secrets(self, super().clean() or {}, SETTINGS_SECRETS)


class RuleFieldInput(forms.TextInput):
    """A text input suggesting the appointment fields (a datalist): any listed field, or
    `field_values.<name>` typed freely."""

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None,
               renderer: Any = None) -> SafeString:
        list_id = f"{(attrs or {}).get('id', name)}-fields"
        field = super().render(name, value, {**(attrs or {}), "list": list_id}, renderer)
        options = format_html_join(
            "", '<option value="{}">{} ({})</option>',
            [(spec.name, spec.label, spec.kind) for spec in FIELDS.values()]
            + [(FIELD_VALUES_PREFIX, "A field value: add its name", "text")],
        )
        return format_html('{}<datalist id="{}">{}</datalist>', field, list_id, options)


class OutboundRuleForm(forms.ModelForm):
    """One rule row of the resource's inline; checked with `rules.validate_rule`, so each
    error shows on its own cell (field, operator or value)."""

    class Meta:
        model = OutboundRule
        fields = ("position", "field", "operator", "value")
        widgets = {
            "field": RuleFieldInput(attrs={"size": 24, "placeholder": "e.g. category",
                                           "autocomplete": "off"}),
            "value": forms.TextInput(attrs={"size": 30}),
            "position": forms.NumberInput(attrs={"style": "width: 4em"}),
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["field"] = (data.get("field") or "").strip()
        if "field" in self.errors or "operator" in self.errors:
            return data
        if data.get("operator"):
            try:
                validate_rule(data["field"], data["operator"], data.get("value") or "")
            except ValidationError as exc:
                for name, messages in exc.message_dict.items():
                    for message in messages:
                        self.add_error(name, message)
        return data
