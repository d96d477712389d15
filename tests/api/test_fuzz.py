"""A schema-based fuzz run (schemathesis) against the API in process: no answer is a 5xx.

Schemathesis reads /api/schema/ through the WSGI application and sends generated requests,
valid and invalid ones, to every operation with a valid API key; `not_a_server_error` fails on
any 5xx, and every error answer must have the API's one JSON error shape. Bounded (a few dozen
examples per operation, derandomised) so the suite stays fast and repeatable; no network.

The schema is loaded at import (its view needs no database): schemathesis' fixture-based loader
(`schemathesis.pytest.from_fixture`) does not work with pytest 9.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

MAX_EXAMPLES = 25

schema = schemathesis.openapi.from_wsgi(
    "/api/schema/?format=json",
    get_wsgi_application(),
    config=SchemathesisConfig.from_dict(
        {"generation": {"max-examples": MAX_EXAMPLES, "deterministic": True}}
    ),
)


@pytest.fixture
def fuzz_target(settings, api_key, make_connector):
    """A valid key, a connector to dispatch to, no rate limit; requests in the test's
    transaction."""
    settings.API_RATE = ""  # the fuzzer's request count is not what is under test here
    make_connector("BC webhook")
    # Django's request signals must not close the test's connection (Django's own test client
    # disconnects them the same way).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield {"X-API-KEY": api_key}
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
# The fixture is meant to be shared by all examples: one key, one connector, growing data.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_operation_answers_a_server_error(case, fuzz_target):
    use_allowed_source_app(case.body)
    case.call_and_validate(
        headers=fuzz_target, checks=[not_a_server_error, answers_the_one_error_shape]
    )


def answers_the_one_error_shape(ctx: Any, response: Any, case: Any) -> None:
    """Every error answer is JSON in the API's one error shape (never an HTML page)."""
    if response.status_code < 400:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/json"), (
        f"{case.method} {case.formatted_path} answered {response.status_code} as {content_type}"
    )
    error = response.json()["error"]
    assert error["status"] == response.status_code and error["code"] and error["message"]


def use_allowed_source_app(body: Any) -> None:
    """Give generated appointments the client's source app, so that valid ones get past the 403
    into the intake service (the 403 itself is tested in test_events.py)."""
    items = body if isinstance(body, list) else [body]
    for item in items:
        if not isinstance(item, dict):
            continue
        appointment, task = item.get("appointment"), item.get("Task")
        if isinstance(appointment, dict) and "source_app" in appointment:
            appointment["source_app"] = "BCPROD"
        if isinstance(task, dict) and isinstance(task.get("Job"), dict):
            task["Job"]["SourceApp"] = "BCPROD"
