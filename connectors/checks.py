"""System checks guarding what production needs (stable ids, see docs/DEPLOYMENT.md)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from . import crypto


@register("dimeconnect", deploy=False)
def check_production_secrets(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """connectors.E001/E002 refuse DEBUG=False without SECRET_KEY or FIELD_ENCRYPTION_KEYS;
    connectors.E003 refuses encryption keys that are not Fernet keys, in any mode;
    connectors.W001 warns in DEBUG that secrets cannot be saved without a key."""
    errors: list[CheckMessage] = []
    keys = [key for key in settings.FIELD_ENCRYPTION_KEYS if key.strip()]
    if not settings.DEBUG:
        if settings.SECRET_KEY == settings.INSECURE_SECRET_KEY_PLACEHOLDER:
            errors.append(
                Error(
                    "SECRET_KEY is not set and DEBUG is off.",
                    hint="Set SECRET_KEY to a long random string in the environment or .env.",
                    id="connectors.E001",
                )
            )
        if not keys:
            errors.append(
                Error(
                    "FIELD_ENCRYPTION_KEYS is not set and DEBUG is off: secrets cannot be "
                    "encrypted.",
                    hint="Set FIELD_ENCRYPTION_KEYS to one or more comma-separated Fernet keys.",
                    id="connectors.E002",
                )
            )
    elif not keys:
        errors.append(
            Warning(
                "FIELD_ENCRYPTION_KEYS is not set: saving a connector secret will fail.",
                hint="`make run` writes a development key into .env; or set one yourself.",
                id="connectors.W001",
            )
        )
    if keys:
        try:
            crypto.parse_keys(keys)
        except crypto.EncryptionKeyError as exc:
            errors.append(
                Error(
                    str(exc),
                    hint="Each key comes from Fernet.generate_key().",
                    id="connectors.E003",
                )
            )
    return errors
