"""Start-up guard shared by the WSGI entry point and the `serve` launcher."""

from __future__ import annotations

from django.core import checks
from django.core.management.base import SystemCheckError


def refuse_unsafe_start() -> None:
    """Raise SystemCheckError listing every failed `dimeconnect` check (errors only)."""
    failed = [
        message
        for message in checks.run_checks(tags=["dimeconnect"])
        if message.is_serious()
    ]
    if failed:
        lines = "\n".join(f"{m.id}: {m.msg} {m.hint or ''}".strip() for m in failed)
        raise SystemCheckError(f"DimeConnect refuses to start:\n{lines}")
