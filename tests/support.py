"""Helpers shared by the suite."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, what: str) -> None:
    """Skip locally when a part (a browser, a server, a shared fixture) is missing; fail in CI,
    where every test must run."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing in CI, where this test must run", pytrace=False)
    pytest.skip(f"{what} is missing")
