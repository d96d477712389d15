"""API clients: keys shown once, stored hashed, and `create_api_client`."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from connectors import services
from connectors.models import ApiClient

pytestmark = pytest.mark.django_db


def test_the_command_prints_the_key_alone_on_its_last_line(capsys):
    call_command(
        "create_api_client", "ERP", "--source-app", "BCPROD", "--source-app", "BCTEST",
        "--source-app", "BCPROD",
    )
    lines = capsys.readouterr().out.strip().splitlines()
    key = lines[-1]
    assert key.startswith("dc_") and " " not in key
    client = ApiClient.objects.get(name="ERP")
    assert client.source_apps == ["BCPROD", "BCTEST"]
    assert key not in (client.key_hash, client.key_prefix)
    assert services.api_client_for_key(key) == client


def test_a_wrong_or_inactive_key_is_refused():
    client, key = services.api_client_create(name="ERP", source_apps=["BCPROD"])
    assert services.api_client_for_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    client.is_active = False
    client.save()
    assert services.api_client_for_key(key) is None


def test_a_new_key_replaces_the_old_one():
    client, old = services.api_client_create(name="ERP", source_apps=["BCPROD"])
    new = services.api_client_rotate_key(client)
    assert services.api_client_for_key(old) is None
    assert services.api_client_for_key(new) == client


def test_a_taken_name_is_a_clear_error():
    services.api_client_create(name="ERP", source_apps=["BCPROD"])
    with pytest.raises(CommandError) as caught:
        call_command("create_api_client", "ERP", "--source-app", "BCPROD")
    assert str(caught.value) == (
        "Cannot create the API client: name: API client with this Name already exists."
    )


def test_a_source_app_over_30_characters_is_refused():
    with pytest.raises(CommandError) as caught:
        call_command("create_api_client", "ERP", "--source-app", "X" * 31)
    assert "is longer than 30 characters" in str(caught.value)
