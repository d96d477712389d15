"""The fault suite (marker `faults`, `pytest -m faults`): DimeConnect's real processes (the
e2e harness, tests/e2e/harness.py) on a fresh database per test, with one part of the world
failing on purpose: a worker killed, the database or the broker cut off (through a loopback
TCP proxy, tests/fakes/tcp_proxy.py), a back office down for hours, an encryption key lost.
Every test asserts exact delivery counts at the loopback receiver.

Tests that need PostgreSQL or Redis use the servers of DATABASE_URL / REDIS_URL, or else the
machine's own on 127.0.0.1 (tests/e2e/backends.py); `require()` skips them locally when there
is none and fails them in CI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import e2e_servers, pytest_runtest_makereport  # noqa: F401
from tests.fakes import webhook_receiver
from tests.fakes.server import FakeServer

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def receiver() -> Iterator[FakeServer]:
    """A webhook receiver that verifies the Standard Webhooks signatures (SECRET)."""
    with webhook_receiver.make(secrets=[SECRET]) as server:
        yield server


def hook(receiver: FakeServer, source_app: str, **extra: object) -> dict[str, object]:
    """An apply_connectors entry: a webhook connector of `source_app` to the receiver."""
    return {"name": f"{source_app} hook", "type": "webhook", "api_type": "rest",
            "auth_type": "none", "uri": receiver.url + "/hooks/dime", "source_app": source_app,
            "signing_secret": SECRET, "timeout_s": 2, **extra}


def webhook_ids(receiver: FakeServer) -> list[str]:
    """The webhook-id of every delivery the receiver accepted, in arrival order."""
    return [str(d.header("webhook-id")) for d in receiver.state.deliveries]
