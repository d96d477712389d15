"""Secrets at rest: MultiFernet round trip, wrong keys, rotation, and columns without plaintext."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from connectors import crypto
from connectors.models import Connector

PASSWORD = "correct-horse-battery-staple"
CLIENT_SECRET = "Xq8~client.secret-value_42"

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_a(settings):
    key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key]
    return key


def make_connector(**extra) -> Connector:
    values = {
        "name": "BC prod",
        "type": "bc_onprem",
        "api_type": "soap",
        "auth_type": "basic",
        "uri": "https://bc.example.test/ws",
        "source_app": "BCPROD",
        "login": "svc",
        "password": PASSWORD,
        "client_secret": CLIENT_SECRET,
    }
    values.update(extra)
    return Connector.objects.create(**values)


def raw_columns(pk: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT password, client_secret FROM connectors_connector WHERE id = %s", [pk]
        )
        return cursor.fetchone()


def test_secrets_round_trip_and_the_columns_never_hold_the_plaintext(key_a):
    connector = make_connector()
    password_raw, secret_raw = raw_columns(connector.pk)
    assert PASSWORD not in password_raw and CLIENT_SECRET not in secret_raw
    assert password_raw.startswith("gAAAA")  # a Fernet token
    loaded = Connector.objects.get(pk=connector.pk)
    assert (loaded.password, loaded.client_secret) == (PASSWORD, CLIENT_SECRET)


def test_an_empty_secret_stays_empty(key_a):
    connector = make_connector(password="", client_secret="")
    assert raw_columns(connector.pk) == ("", "")
    assert Connector.objects.get(pk=connector.pk).password == ""


def test_each_save_encrypts_with_a_fresh_salt(key_a):
    first = make_connector(name="one")
    second = make_connector(name="two")
    assert raw_columns(first.pk)[0] != raw_columns(second.pk)[0]


def test_a_value_no_key_opens_raises_a_clear_error_and_never_returns_ciphertext(settings, key_a):
    connector = make_connector()
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError) as caught:
        Connector.objects.get(pk=connector.pk)
    message = str(caught.value)
    assert message.startswith(
        "Cannot decrypt connectors.Connector.password: none of the 1 key(s) in "
        "FIELD_ENCRYPTION_KEYS opens it."
    )
    assert PASSWORD not in message and key_a not in message


def test_an_invalid_key_is_named_by_position_without_showing_it(settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), "not-a-fernet-key"]
    with pytest.raises(crypto.EncryptionKeyError) as caught:
        crypto.encrypt("x")
    assert str(caught.value) == (
        "FIELD_ENCRYPTION_KEYS: key 2 of 2 is not a valid Fernet key "
        "(32 bytes, url-safe base64, 44 characters)"
    )


def test_older_keys_still_decrypt_after_a_new_first_key(settings, key_a):
    connector = make_connector()
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), key_a]
    assert Connector.objects.get(pk=connector.pk).password == PASSWORD


def test_rotation_re_encrypts_with_the_first_key_and_can_run_again(settings, key_a, capsys):
    connectors = [make_connector(name=f"c{i}") for i in range(5)]
    key_b = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key_b, key_a]

    call_command("rotate_encryption_keys", batch_size=2)
    out = capsys.readouterr().out
    assert "Re-encrypted 10 secret(s) with the first key; 0 already used it." in out

    settings.FIELD_ENCRYPTION_KEYS = [key_b]  # the old key can go now
    for connector in connectors:
        loaded = Connector.objects.get(pk=connector.pk)
        assert (loaded.password, loaded.client_secret) == (PASSWORD, CLIENT_SECRET)

    call_command("rotate_encryption_keys")
    assert "Re-encrypted 0 secret(s) with the first key; 10 already used it." in (
        capsys.readouterr().out
    )
    assert PASSWORD not in capsys.readouterr().out


def test_rotation_with_an_unknown_key_stops_before_writing_anything(settings, key_a):
    opened = make_connector(name="opens")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    foreign = make_connector(name="foreign")  # encrypted with a key that will be dropped
    before = raw_columns(opened.pk), raw_columns(foreign.pk)
    key_c = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key_c, key_a]

    with pytest.raises(CommandError) as caught:
        call_command("rotate_encryption_keys")
    assert f"connectors.Connector.password (id {foreign.pk})" in str(caught.value)
    assert str(caught.value).endswith("Nothing was changed.")
    assert (raw_columns(opened.pk), raw_columns(foreign.pk)) == before
