"""A lost or malformed encryption key: clear errors naming the problem, and nothing overwritten.

- FIELD_ENCRYPTION_KEYS malformed: every command (and the servers) refuses to start with
  system check connectors.E003 naming the bad key's position.
- A stored secret encrypted with a key no longer configured: `rotate_encryption_keys` refuses,
  naming the connector field and row, and changes nothing (the raw column is byte-identical);
  the worker fails the connector's dispatches at once with the connector, the field and a
  hint, and sends nothing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet

from tests.e2e.events import event, new_guid
from tests.e2e.harness import ROOT, App, deployed
from tests.fakes.server import FakeServer

from .conftest import hook, webhook_ids

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

APP = "FLTKEYS"
CONNECTOR = f"{APP} hook"


@pytest.fixture
def app(receiver: FakeServer, tmp_path) -> Iterator[App]:
    with deployed(tmp_path, connectors=[hook(receiver, APP)], source_apps=[APP],
                  clusters=0) as app:
        yield app


def raw_secrets(app: App) -> list[dict[str, object]]:
    """The connectors' encrypted columns as stored (never decrypted)."""
    return app.query("SELECT id, name, signing_secret, password, client_secret"
                     " FROM connectors_connector ORDER BY id")


def manage(app: App, *args: str, keys: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT,
                          env={**app.env, "FIELD_ENCRYPTION_KEYS": keys},
                          capture_output=True, text=True, timeout=120)


def test_a_malformed_key_stops_every_command_with_check_e003_and_changes_nothing(app):
    before = raw_secrets(app)
    good = app.env["FIELD_ENCRYPTION_KEYS"]
    for args in (("check",), ("rotate_encryption_keys",)):
        result = manage(app, *args, keys=f"{good},not-a-fernet-key")
        assert result.returncode != 0, args
        assert "connectors.E003" in result.stderr, args
        assert "FIELD_ENCRYPTION_KEYS: key 2 of 2 is not a valid Fernet key" in result.stderr
        assert "not-a-fernet-key" not in result.stderr + result.stdout  # keys are never shown
    assert raw_secrets(app) == before


def test_a_secret_under_a_lost_key_is_refused_by_rotation_and_fails_its_dispatches(
    app, receiver
):
    [results] = [app.accept_events([event("create", new_guid(), APP)])]
    assert results[0]["dispatches"] == 1  # queued while the key was still there
    before = raw_secrets(app)
    [connector_id] = [row["id"] for row in before if row["name"] == CONNECTOR]
    app.env["FIELD_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()  # the old key is lost

    result = manage(app, "rotate_encryption_keys", keys=app.env["FIELD_ENCRYPTION_KEYS"])
    assert result.returncode == 1
    assert (f"Cannot decrypt connectors.Connector.signing_secret (id {connector_id}): none of "
            "the 1 key(s) in FIELD_ENCRYPTION_KEYS opens it.") in result.stderr
    assert "Nothing was changed." in result.stderr
    assert raw_secrets(app) == before  # byte-identical ciphertext

    app.start_cluster()  # takes the queued dispatch
    [row] = app.wait_settled(APP, 1, timeout=60)
    assert row["status"] == "failed"
    assert row["last_error"].startswith(
        f"Connector '{CONNECTOR}': Cannot decrypt connectors.Connector.signing_secret")
    assert "FIELD_ENCRYPTION_KEYS" in row["last_hint"]
    assert app.attempt_outcomes(row["id"]) == ["failed"]
    assert webhook_ids(receiver) == [] and receiver.requests == []  # nothing was sent
    assert raw_secrets(app) == before
