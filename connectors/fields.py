"""Model fields: encrypted secrets, JSON inserted in bulk, and a multiple-choice list."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.text import capfirst

from . import crypto


class EncryptedTextField(models.TextField):
    """Text encrypted at rest with FIELD_ENCRYPTION_KEYS (see crypto.py).

    Python code sees the plaintext; the column only ever holds a Fernet token. An empty value
    stays empty ("not set"). Loading a value that no configured key opens raises
    crypto.DecryptionError: it never returns ciphertext and never silently becomes empty.
    Lookups on the value cannot match (each encryption is salted), so filter on emptiness only.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if not value:
            return value
        return crypto.decrypt(value, label=f"{self.model._meta.label}.{self.name}")

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if not value:
            return value
        return crypto.encrypt(str(value))


class BulkJSONField(models.JSONField):
    """Django's JSONField, bulk-inserted as `VALUES` rather than `UNNEST` on PostgreSQL.

    Django 5.2 bulk-inserts on PostgreSQL through `UNNEST` of one array literal per column.
    psycopg quotes a text array's elements with a Python regex, per escaped character; a JSON
    document is full of quotes, so an event or a dispatch payload of 1-2 kB took ~1.5 ms to
    quote, more than the rest of its insert (and most of the cost of recording a page of
    deliveries). A field with `get_placeholder` makes Django use `VALUES`, where libpq quotes
    each value. Nothing else changes: same column, same values, no migration of data.
    """

    def get_placeholder(self, value: Any, compiler: Any, connection: Any) -> str:
        return "%s"


class MultipleChoiceField(models.CharField):
    """A subset of `choices`, stored as sorted comma-separated codes ("create,delete").

    Codes are words that are not substrings of one another, so `field__contains=code` is an
    exact membership test on every database.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 100)
        super().__init__(*args, **kwargs)

    def _order(self) -> list[str]:
        return [str(value) for value, _ in self.flatchoices]

    def normalize(self, value: Any) -> list[str]:
        """The codes in choice order; raises ValidationError naming unknown ones."""
        if value is None or value == "":
            return []
        items = value.split(",") if isinstance(value, str) else list(value)
        codes = [str(item).strip() for item in items if str(item).strip()]
        order = self._order()
        unknown = sorted(set(codes) - set(order))
        if unknown:
            raise ValidationError(
                f"Unknown value(s) {', '.join(unknown)}; allowed: {', '.join(order)}.",
                code="invalid_choice",
            )
        return [code for code in order if code in codes]

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> list[str]:
        return [code for code in (value or "").split(",") if code]

    def to_python(self, value: Any) -> list[str]:
        return self.normalize(value)

    def get_prep_value(self, value: Any) -> Any:
        return ",".join(self.normalize(value))

    def validate(self, value: Any, model_instance: Any) -> None:
        if not self.normalize(value) and not self.blank:
            raise ValidationError(self.error_messages["blank"], code="blank")

    def value_to_string(self, obj: Any) -> str:
        return ",".join(self.value_from_object(obj) or [])

    def formfield(self, *args: Any, **kwargs: Any) -> Any:
        return forms.MultipleChoiceField(
            choices=list(self.flatchoices),
            widget=forms.CheckboxSelectMultiple,
            required=not self.blank,
            label=capfirst(self.verbose_name),
            help_text=self.help_text,
            initial=self.get_default(),
        )
