"""Production refuses to start without its secrets (system checks connectors.E001-E003)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management.base import SystemCheckError

from connectors.checks import check_production_secrets
from dimeconnect.startup import refuse_unsafe_start


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_production_without_secret_key_or_encryption_keys_is_refused(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = settings.INSECURE_SECRET_KEY_PLACEHOLDER
    settings.FIELD_ENCRYPTION_KEYS = []
    assert ids(check_production_secrets()) == ["connectors.E001", "connectors.E002"]
    with pytest.raises(SystemCheckError) as caught:
        refuse_unsafe_start()
    assert "connectors.E001: SECRET_KEY is not set and DEBUG is off." in str(caught.value)


def test_development_may_run_without_them_with_a_warning(settings):
    settings.DEBUG = True
    settings.SECRET_KEY = settings.INSECURE_SECRET_KEY_PLACEHOLDER
    settings.FIELD_ENCRYPTION_KEYS = []
    assert ids(check_production_secrets()) == ["connectors.W001"]
    refuse_unsafe_start()  # a warning does not stop it


def test_a_malformed_key_is_refused_in_any_mode(settings):
    settings.DEBUG = True
    settings.FIELD_ENCRYPTION_KEYS = ["short"]
    [error] = check_production_secrets()
    assert error.id == "connectors.E003"
    assert "key 1 of 1 is not a valid Fernet key" in error.msg


def test_production_with_both_set_passes(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = "a" * 50
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert check_production_secrets() == []
    refuse_unsafe_start()
