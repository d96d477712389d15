"""Reversible encryption of secrets at rest with MultiFernet.

`FIELD_ENCRYPTION_KEYS` holds comma-separated Fernet keys: the first encrypts, every key
decrypts, so a new key goes first and the old ones stay until `rotate_encryption_keys` has run.
Errors never include a key, a token or a plaintext.
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class EncryptionKeyError(ImproperlyConfigured):
    """FIELD_ENCRYPTION_KEYS is missing or holds a value that is not a Fernet key."""


class DecryptionError(Exception):
    """A stored secret that no configured key opens."""


def generate_key() -> str:
    """A new random Fernet key, as text for FIELD_ENCRYPTION_KEYS."""
    return Fernet.generate_key().decode()


def parse_keys(raw: list[str] | tuple[str, ...]) -> list[Fernet]:
    """Fernet objects for each key, in order; raises EncryptionKeyError naming the bad position."""
    keys = [key.strip() for key in raw if key.strip()]
    if not keys:
        raise EncryptionKeyError(
            "FIELD_ENCRYPTION_KEYS is empty: set it to one or more comma-separated Fernet keys "
            "(generate one with: python -c \"from cryptography.fernet import Fernet; "
            'print(Fernet.generate_key().decode())")'
        )
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, TypeError):
            raise EncryptionKeyError(
                f"FIELD_ENCRYPTION_KEYS: key {position} of {len(keys)} is not a valid Fernet key "
                "(32 bytes, url-safe base64, 44 characters)"
            ) from None
    return fernets


@functools.lru_cache(maxsize=8)
def _fernets(raw: tuple[str, ...]) -> tuple[MultiFernet, Fernet]:
    fernets = parse_keys(raw)
    return MultiFernet(fernets), fernets[0]


def _configured() -> tuple[MultiFernet, Fernet]:
    return _fernets(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    """The plaintext encrypted with the first key, as text safe for a database column."""
    multi, _ = _configured()
    return multi.encrypt(plaintext.encode()).decode()


def decrypt(token: str, *, label: str) -> str:
    """The plaintext of a token; raises DecryptionError (naming `label`) when no key opens it."""
    multi, _ = _configured()
    try:
        return multi.decrypt(token.encode()).decode()
    except InvalidToken:
        count = len([k for k in settings.FIELD_ENCRYPTION_KEYS if k.strip()])
        raise DecryptionError(
            f"Cannot decrypt {label}: none of the {count} key(s) in FIELD_ENCRYPTION_KEYS opens "
            "it. Add the key it was encrypted with (after the current first key) and run "
            "`manage.py rotate_encryption_keys`."
        ) from None


def is_current(token: str) -> bool:
    """True when the token is already encrypted with the first (current) key."""
    _, primary = _configured()
    try:
        primary.decrypt(token.encode())
    except InvalidToken:
        return False
    return True
