"""`make fakes` (tests.fakes.all): its connectors file applies and each connector tests green."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from connectors import services
from connectors.models import Connector
from tests.fakes import all as all_fakes

pytestmark = pytest.mark.django_db


def test_the_demo_connectors_cover_every_combination_and_test_green(tmp_path, settings):
    tokens, servers = all_fakes.start_servers(0, ca_dir=tmp_path / "ca")
    try:
        settings.HTTP_CA_BUNDLE = str(tmp_path / "ca" / "ca.pem")
        settings.ENTRA_AUTHORITY_HOST = tokens.url
        settings.BACKOFFICE_SERVICE_LOGIN = all_fakes.SERVICE_LOGIN
        settings.BACKOFFICE_SERVICE_PASSWORD = all_fakes.SERVICE_PASSWORD
        path = tmp_path / "demo-connectors.json"
        path.write_text(json.dumps(all_fakes.connector_specs(tokens, servers)))
        call_command("apply_connectors", str(path))
        results = {c.name: services.connector_test_connection(c) for c in Connector.objects.all()}
    finally:
        tokens.stop()
        for server in servers.values():
            server.stop()
    assert len(results) == 29
    assert {name: r.message for name, r in results.items() if not r.ok} == {}
