"""End-to-end tests: DimeConnect's web server and qcluster as real processes (tests/e2e/harness).

They need nothing beyond the suite's own parts; with DATABASE_URL on PostgreSQL or REDIS_URL set
(CI's second pass), those servers must answer: locally the tests skip without them, in CI they
fail (tests.support.require). A failed test's report carries the tail of every process's log.
"""

from __future__ import annotations

import pytest

from tests.support import require

from .backends import postgresql_reachable, redis_reachable, redis_url, uses_postgresql
from .harness import App


@pytest.fixture(scope="session", autouse=True)
def e2e_servers() -> None:
    """The PostgreSQL and Redis servers this run was pointed at answer."""
    if uses_postgresql():
        require(postgresql_reachable(), "PostgreSQL at DATABASE_URL")
    if redis_url():
        require(redis_reachable(), "Redis at REDIS_URL")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Attach the app's process logs to the report of a failed test."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, App):
                report.sections.append((f"e2e processes ({value.workdir.name})", value.report()))
    return report
