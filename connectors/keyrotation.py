"""Re-encrypting stored secrets with the current (first) key of FIELD_ENCRYPTION_KEYS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.apps import apps
from django.db import models, transaction
from django.db.models.functions import Cast

from . import crypto
from .fields import EncryptedTextField


def encrypted_fields() -> list[tuple[type[models.Model], list[str]]]:
    """Every model with encrypted fields, and those fields' names."""
    found = []
    for model in apps.get_models():
        names = [f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)]
        if names:
            found.append((model, names))
    return found


def _raw_rows(
    model: type[models.Model], field: str, batch_size: int
) -> Iterator[list[tuple[int, str]]]:
    """Batches of (pk, ciphertext) for the non-empty values of one field, read undecrypted."""
    queryset = (
        model._default_manager.annotate(raw=Cast(field, models.TextField()))
        .exclude(**{f"{field}": ""})
        .exclude(**{f"{field}__isnull": True})
        .order_by("pk")
    )
    last_pk = None
    while True:
        page = queryset if last_pk is None else queryset.filter(pk__gt=last_pk)
        batch = list(page.values_list("pk", "raw")[:batch_size])
        if not batch:
            return
        yield batch
        last_pk = batch[-1][0]


def verify_all() -> int:
    """Check that every stored secret opens with the configured keys; returns how many there are.

    Raises crypto.DecryptionError naming the first one that does not (nothing is written).
    """
    count = 0
    for model, names in encrypted_fields():
        for name in names:
            for batch in _raw_rows(model, name, 1000):
                for pk, raw in batch:
                    crypto.decrypt(raw, label=f"{model._meta.label}.{name} (id {pk})")
                    count += 1
    return count


@dataclass
class RotationResult:
    rotated: int = 0
    current: int = 0


def rotate_all(*, batch_size: int, progress: Callable[[int], None]) -> RotationResult:
    """Re-encrypt with the first key every secret that does not use it yet, one batch per
    transaction. A value changed meanwhile by someone else is left as they wrote it (it already
    uses the first key)."""
    result = RotationResult()
    for model, names in encrypted_fields():
        for name in names:
            for batch in _raw_rows(model, name, batch_size):
                with transaction.atomic():
                    for pk, raw in batch:
                        if crypto.is_current(raw):
                            result.current += 1
                        else:
                            plaintext = crypto.decrypt(raw, label=f"{model._meta.label}.{name}")
                            # Compare-and-swap on the ciphertext; update() encrypts anew.
                            model._default_manager.annotate(
                                raw=Cast(name, models.TextField())
                            ).filter(pk=pk, raw=raw).update(**{name: plaintext})
                            result.rotated += 1
                progress(len(batch))
    return result
