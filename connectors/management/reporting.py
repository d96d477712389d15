"""What `test_connector` and `test_exchange` print: the steps of a connection test."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from connectors.backoffices.connection import ConnectionTestResult


def write_test_result(command: BaseCommand, result: ConnectionTestResult, *,
                      as_json: bool) -> None:
    """Print each step (ok/FAIL, time, detail, the fix or note), then the summary, or the
    whole result as JSON; exit with status 1 when the test failed."""
    if as_json:
        command.stdout.write(json.dumps(result.as_dict(), indent=2))
    else:
        for step in result.steps:
            mark = command.style.SUCCESS("ok  ") if step.ok else command.style.ERROR("FAIL")
            command.stdout.write(f"{mark} {step.name} ({step.duration_ms} ms): {step.detail}")
            if step.hint:
                command.stdout.write(f"     {'Note' if step.ok else 'Fix'}: {step.hint}")
        summary = command.style.SUCCESS if result.ok else command.style.ERROR
        command.stdout.write(summary(result.message))
    if not result.ok:
        raise SystemExit(1)
