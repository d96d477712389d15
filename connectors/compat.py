"""The codes of DESIGN.md's Vocabulary and which combinations of them a connector may use.

This table is the one place the type x API type x auth type rules live: model validation (and so
the admin, `apply_connectors`, `import_backoffices` and any API) and the admin's JavaScript all
read it.
"""

from __future__ import annotations

from django.db import models


class ConnectorType(models.TextChoices):
    BC_ONPREM = "bc_onprem", "Business Central on-prem"
    BC_ONLINE = "bc_online", "Business Central online"
    NAV = "nav", "Microsoft Dynamics NAV"
    WEBHOOK = "webhook", "Webhook"


class ApiType(models.TextChoices):
    SOAP = "soap", "SOAP"
    REST = "rest", "REST (JSON)"


class AuthType(models.TextChoices):
    NONE = "none", "None (service account)"
    BASIC = "basic", "Basic"
    NTLM = "ntlm", "NTLM"
    WINDOWS = "windows", "Windows (Negotiate)"
    ENTRA_ID = "entra_id", "Microsoft Entra ID"
    OAUTH2_BASIC = "oauth2_basic", "OAuth2 client credentials (client secret basic)"
    OAUTH2_POST = "oauth2_post", "OAuth2 client credentials (client secret post)"


class CrudType(models.TextChoices):
    CREATE = "create", "Create"
    UPDATE = "update", "Update"
    DELETE = "delete", "Delete"


class PayloadStyle(models.TextChoices):
    CANONICAL = "canonical", "DimeConnect (canonical)"
    DIMESCHEDULER = "dimescheduler", "Dime.Scheduler webhook (PascalCase)"


T, A, U = ConnectorType, ApiType, AuthType

API_TYPES: dict[str, tuple[str, ...]] = {
    T.BC_ONPREM: (A.SOAP, A.REST),
    T.BC_ONLINE: (A.SOAP, A.REST),
    T.NAV: (A.SOAP,),
    T.WEBHOOK: (A.REST,),
}

AUTH_TYPES: dict[str, tuple[str, ...]] = {
    T.BC_ONPREM: (
        U.NONE, U.BASIC, U.NTLM, U.WINDOWS, U.ENTRA_ID, U.OAUTH2_BASIC, U.OAUTH2_POST,
    ),
    T.BC_ONLINE: (U.BASIC, U.ENTRA_ID, U.OAUTH2_BASIC, U.OAUTH2_POST),
    T.NAV: (U.NONE, U.BASIC, U.NTLM, U.WINDOWS),
    T.WEBHOOK: (U.NONE, U.BASIC, U.ENTRA_ID, U.OAUTH2_BASIC, U.OAUTH2_POST),
}

# Windows authentication is a SOAP-only feature of NAV/Business Central (seed connectors.txt).
SOAP_ONLY_AUTH_TYPES: tuple[str, ...] = (U.NTLM, U.WINDOWS)

# Fields each auth type uses: (required, optional). The admin shows exactly these.
AUTH_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    U.NONE: ((), ()),
    U.BASIC: (("login", "password"), ()),
    U.NTLM: (("login", "password"), ()),
    U.WINDOWS: (("login", "password"), ()),
    U.ENTRA_ID: (("tenant_id", "client_id", "client_secret"), ("scope",)),
    U.OAUTH2_BASIC: (("token_url", "client_id", "client_secret"), ("scope",)),
    U.OAUTH2_POST: (("token_url", "client_id", "client_secret"), ("scope",)),
}

# Fields that only mean something for some connector types.
TYPE_ONLY_FIELDS: dict[str, tuple[str, ...]] = {
    "signing_secret": (T.WEBHOOK,),
    "payload_style": (T.WEBHOOK,),
}


def _allowed(choices: type[models.TextChoices], codes: tuple[str, ...]) -> str:
    labels = dict(choices.choices)
    return ", ".join(f"{labels[code]} ({code})" for code in codes)


def combination_errors(connector_type: str, api_type: str, auth_type: str) -> dict[str, str]:
    """Field -> message for each part of the combination the table refuses (empty when valid).

    Each message names the choices that are allowed, so whoever reads it can fix the entry.
    Unknown codes are left to the fields' own choice validation.
    """
    if connector_type not in API_TYPES:
        return {}
    type_label = ConnectorType(connector_type).label
    errors: dict[str, str] = {}
    api_types = API_TYPES[connector_type]
    if api_type in ApiType.values and api_type not in api_types:
        errors["api_type"] = (
            f"{type_label} does not support API type {ApiType(api_type).label}. "
            f"Allowed: {_allowed(ApiType, api_types)}."
        )
    auth_types = AUTH_TYPES[connector_type]
    if auth_type in AuthType.values and auth_type not in auth_types:
        errors["auth_type"] = (
            f"{type_label} does not support authentication {AuthType(auth_type).label}. "
            f"Allowed: {_allowed(AuthType, auth_types)}."
        )
    elif auth_type in SOAP_ONLY_AUTH_TYPES and api_type == ApiType.REST:
        rest_auth = tuple(code for code in auth_types if code not in SOAP_ONLY_AUTH_TYPES)
        errors["auth_type"] = (
            f"{AuthType(auth_type).label} authentication works only with the SOAP API type. "
            f"With {ApiType.REST.label} choose one of: {_allowed(AuthType, rest_auth)}."
        )
    return errors


def allowed_combinations() -> list[tuple[str, str, str]]:
    """Every valid (type, api_type, auth_type), in table order."""
    return [
        (connector_type, api_type, auth_type)
        for connector_type, api_types in API_TYPES.items()
        for api_type in api_types
        for auth_type in AUTH_TYPES[connector_type]
        if not combination_errors(connector_type, api_type, auth_type)
    ]
