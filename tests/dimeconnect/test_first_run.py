"""`make run`'s first-run steps: the development .env, the superuser and the demo data."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from connectors import services
from connectors.compat import ConnectorType
from connectors.models import ApiClient, Connector
from dimeconnect import envfile


def test_envfile_writes_a_development_key_once_and_keeps_existing_values(tmp_path, monkeypatch):
    for name in ("DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION_KEYS"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / ".env"
    path.write_text("SECRET_KEY=kept\n")
    assert envfile.ensure(path) == ["DEBUG", "FIELD_ENCRYPTION_KEYS"]
    text = path.read_text()
    assert "SECRET_KEY=kept" in text and text.count("SECRET_KEY=") == 1
    assert envfile.ensure(path) == []
    assert path.stat().st_mode & 0o077 == 0


def test_envfile_says_when_it_generated_the_encryption_key(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FIELD_ENCRYPTION_KEYS", raising=False)
    monkeypatch.setenv("DIMECONNECT_ENV_FILE", str(tmp_path / ".env"))
    envfile.main()
    assert "Generated a development encryption key" in capsys.readouterr().out


@pytest.mark.django_db
def test_first_run_creates_the_admin_and_demo_data_once(monkeypatch, capsys):
    monkeypatch.delenv("DIMECONNECT_ADMIN_PASSWORD", raising=False)
    call_command("first_run")
    out = capsys.readouterr().out
    password = out.split("password ")[1].split()[0]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    assert set(Connector.objects.values_list("type", flat=True)) == set(ConnectorType.values)
    assert not Connector.objects.filter(enabled=True).exists()
    key = out.strip().splitlines()[-1].strip()
    assert services.api_client_for_key(key) == ApiClient.objects.get()

    call_command("first_run")
    again = capsys.readouterr().out
    assert password not in again and "log in with your account" in again
    assert Connector.objects.count() == len(ConnectorType.values)


@pytest.mark.django_db
def test_first_run_takes_the_password_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("DIMECONNECT_ADMIN_PASSWORD", "from-the-env-1234")
    call_command("first_run", no_demo=True)
    assert "from-the-env-1234" not in capsys.readouterr().out
    assert get_user_model().objects.get().check_password("from-the-env-1234")
    assert not Connector.objects.exists()
