"""The dispatch log's filters (a GET form): status, connector, source app, time range, search.

Times without a zone are read in the site's time zone (settings.TIME_ZONE, UTC by default).
"To" is inclusive: a date alone ("2026-11-21") means up to the end of that day, a time to the
minute ("2026-11-21 09:30") up to the end of that minute.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.db.models import QuerySet

from connectors.models import Connector, DispatchStatus

from .selectors import DispatchFilters, source_app_choices

DATE_ONLY = re.compile(r"\s*\d{4}-\d{2}-\d{2}\s*")
TIME_FORMAT_HELP = "e.g. 2026-11-21 or 2026-11-21 09:30"
INVALID_TIME = f"Enter a date, or a date and time ({TIME_FORMAT_HELP})."


class TimeInput(forms.DateTimeInput):
    """A text box that takes a date or a date and time (and the browser's datetime-local)."""

    input_type = "text"

    def __init__(self) -> None:
        super().__init__(attrs={"placeholder": "YYYY-MM-DD HH:MM", "size": 16})


class ConnectorChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Connector) -> str:
        return obj.name


class DispatchFilterForm(forms.Form):
    """Bound to request.GET; `filters()` gives the validated DispatchFilters."""

    q = forms.CharField(
        label="Search", required=False, max_length=200, strip=True,
        help_text="Appointment GUID or no, job no, task no, event id, resource no or dispatch id "
        "(exact).",
    )
    status = forms.ChoiceField(
        required=False, choices=[("", "All statuses"), *DispatchStatus.choices]
    )
    connector = ConnectorChoiceField(
        required=False, empty_label="All connectors",
        queryset=Connector.objects.none(),  # set per form (fresh, ordered, without secrets)
        error_messages={"invalid_choice": "That connector does not exist (any more)."},
    )
    source_app = forms.ChoiceField(required=False, label="Source app")
    created_from = forms.DateTimeField(
        required=False, label="From", widget=TimeInput(),
        error_messages={"invalid": INVALID_TIME},
    )
    created_to = forms.DateTimeField(
        required=False, label="To", widget=TimeInput(),
        error_messages={"invalid": INVALID_TIME},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connector"].queryset = connector_choices()  # type: ignore[attr-defined]
        apps = source_app_choices()
        self.fields["source_app"].choices = [  # type: ignore[attr-defined]
            ("", "All source apps"), *((app, app) for app in apps)
        ]

    def clean_created_to(self) -> datetime | None:
        """The exclusive upper bound: the end of the given day or minute."""
        value: datetime | None = self.cleaned_data.get("created_to")
        if value is None:
            return None
        raw = str(self.data.get(self.add_prefix("created_to"), ""))
        step = timedelta(days=1) if DATE_ONLY.fullmatch(raw) else timedelta(minutes=1)
        if value.second or value.microsecond:
            step = timedelta(microseconds=1)
        try:
            return value + step
        except OverflowError:
            raise forms.ValidationError(INVALID_TIME, code="invalid") from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("created_from"), cleaned.get("created_to")
        if start is not None and end is not None and start >= end:
            self.add_error("created_to", "“To” must be later than “From”.")
        return cleaned

    def filters(self) -> DispatchFilters:
        """The validated filters; call only after is_valid() returned True."""
        data = self.cleaned_data
        connector = data.get("connector")
        return DispatchFilters(
            status=data.get("status") or "",
            connector_id=connector.pk if connector is not None else None,
            source_app=data.get("source_app") or "",
            created_from=data.get("created_from"),
            created_before=data.get("created_to"),
            q=data.get("q") or "",
        )


def connector_choices() -> QuerySet[Connector]:
    # Only what a choice shows: the secrets are neither loaded nor decrypted.
    return Connector.objects.only("id", "name").order_by("name")
