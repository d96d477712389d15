"""Helpers shared by the suite."""

from __future__ import annotations

import os

import httpx
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


# gunicorn closes a keep-alive connection after 2 idle seconds (its --keep-alive default). A
# client that reuses one at that moment gets "Server disconnected without sending a response";
# closing our idle connections first removes the race.
CLIENT_KEEPALIVE_S = 1.0


def web_client(timeout: float = 30) -> httpx.Client:
    """An httpx client for the app's gunicorn: no proxies from the environment, and idle
    connections dropped before gunicorn drops them (see CLIENT_KEEPALIVE_S)."""
    return httpx.Client(timeout=timeout, trust_env=False,
                        limits=httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE_S))
