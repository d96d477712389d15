"""Admin forms: write-only secret inputs and the connector and API-client forms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django import forms

from .models import SECRET_FIELDS, ApiClient, Connector
from .services import SPEC_FIELDS, api_client_source_apps_clean

# Secrets shorter than this show only "set": a suffix would give away too much of them.
SUFFIX_MIN_LENGTH = 12


def secret_status(value: str | None) -> str:
    """How a stored secret is shown: "not set", "set", or "set · ends in …abcd"."""
    if not value:
        return "not set"
    if len(value) < SUFFIX_MIN_LENGTH:
        return "set"
    return f"set · ends in …{value[-4:]}"


@dataclass(frozen=True)
class SecretInputValue:
    new: str
    clear: bool


class SecretInput(forms.Widget):
    """A password input that never renders the stored value, only its status, and a "clear" box.

    Blank keeps the stored secret; a new value replaces it; "clear" removes it.
    """

    template_name = "connectors/widgets/secret_input.html"

    def __init__(self, attrs: dict[str, Any] | None = None, *, empty_hint: str = "enter a value"):
        super().__init__(attrs)
        self.empty_hint = empty_hint

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, None, attrs)  # the value never reaches the page
        context["widget"]["status"] = secret_status(value if isinstance(value, str) else "")
        context["widget"]["is_set"] = bool(value) and isinstance(value, str)
        context["widget"]["clear_name"] = f"{name}__clear"
        context["widget"]["empty_hint"] = self.empty_hint
        return context

    def value_from_datadict(self, data: Any, files: Any, name: str) -> SecretInputValue:
        return SecretInputValue(
            new=(data.get(name) or "").strip(), clear=bool(data.get(f"{name}__clear"))
        )

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return name not in data and f"{name}__clear" not in data


class SecretField(forms.Field):
    widget = SecretInput

    def __init__(self, **kwargs: Any) -> None:
        # TextField.formfield passes text options (a Textarea, max_length) that do not apply.
        for option in ("max_length", "empty_value"):
            kwargs.pop(option, None)
        if not isinstance(kwargs.get("widget"), SecretInput):
            kwargs.pop("widget", None)
        kwargs["required"] = False
        super().__init__(**kwargs)

    def bound_data(self, data: Any, initial: Any) -> Any:
        # A refused form is rendered again: show the stored secret's status (and its "clear"
        # box), never the posted input (which is not a str and would read as "not set").
        return initial

    def has_changed(self, initial: Any, data: Any) -> bool:
        return isinstance(data, SecretInputValue) and (bool(data.new) or data.clear)


class ConnectorAdminForm(forms.ModelForm):
    class Meta:
        model = Connector
        fields = list(SPEC_FIELDS)
        field_classes = {name: SecretField for name in SECRET_FIELDS}
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "uri": forms.URLInput(attrs={"size": 80}),
            "token_url": forms.URLInput(attrs={"size": 80}),
            "signing_secret": SecretInput(empty_hint="leave blank to generate one"),
        }

    def clean(self) -> dict[str, Any]:
        """Turn each secret input into the value to store: new, cleared, or the current one."""
        data = super().clean() or {}
        for name in SECRET_FIELDS:
            value = data.get(name)
            if isinstance(value, SecretInputValue):
                current = getattr(self.instance, name) or ""
                data[name] = value.new or ("" if value.clear else current)
        return data


def split_codes(text: str) -> list[str]:
    return [part for part in re.split(r"[,\s]+", text) if part]


class SourceAppsField(forms.CharField):
    """Source app codes typed as one comma- or space-separated line."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(value)
        return value

    def clean(self, value: Any) -> list[str]:
        return api_client_source_apps_clean(split_codes(super().clean(value)))


class ApiClientAdminForm(forms.ModelForm):
    source_apps = SourceAppsField(
        label="Allowed source apps",
        help_text="Comma-separated source app codes this client may post events for.",
        widget=forms.TextInput(attrs={"size": 60}),
    )

    class Meta:
        model = ApiClient
        fields = ["name", "source_apps", "is_active"]
