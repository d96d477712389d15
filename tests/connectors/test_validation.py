"""The type x API type x auth type table (DESIGN.md, Connector), enforced by model validation."""

from __future__ import annotations

import itertools

import pytest
from django.core.exceptions import ValidationError

from connectors.compat import AUTH_FIELDS, ApiType, AuthType, ConnectorType, allowed_combinations
from connectors.models import Connector

# DESIGN.md's table, written out by hand so the code's table is checked against the contract.
ALLOWED = {
    ("bc_onprem", "soap"): {"none", "basic", "ntlm", "windows", "entra_id", "oauth2_basic",
                            "oauth2_post"},
    ("bc_onprem", "rest"): {"none", "basic", "entra_id", "oauth2_basic", "oauth2_post"},
    ("bc_online", "soap"): {"basic", "entra_id", "oauth2_basic", "oauth2_post"},
    ("bc_online", "rest"): {"basic", "entra_id", "oauth2_basic", "oauth2_post"},
    ("nav", "soap"): {"none", "basic", "ntlm", "windows"},
    ("webhook", "rest"): {"none", "basic", "entra_id", "oauth2_basic", "oauth2_post"},
}

AUTH_VALUES = {
    "login": "svc-dime",
    "password": "a-long-password-value",
    "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "client_id": "8f2c1d1e-1111-2222-3333-444455556666",
    "client_secret": "client-secret-value-123",
    "token_url": "https://127.0.0.1:9443/oauth2/token",
}


def connector_for(connector_type: str, api_type: str, auth_type: str) -> Connector:
    required, _ = AUTH_FIELDS[auth_type]
    return Connector(
        name=f"{connector_type}-{api_type}-{auth_type}",
        type=connector_type,
        api_type=api_type,
        auth_type=auth_type,
        uri="https://bc.example.test/ws/Page/Appointment",
        source_app="BCPROD",
        signing_secret="whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
        **{field: AUTH_VALUES[field] for field in required},
    )


ALL = list(itertools.product(ConnectorType.values, ApiType.values, AuthType.values))


def test_the_code_table_matches_the_design_table():
    expected = {(t, a, u) for (t, a), auths in ALLOWED.items() for u in auths}
    assert set(allowed_combinations()) == expected


@pytest.mark.parametrize(("connector_type", "api_type", "auth_type"), ALL)
def test_every_combination_is_accepted_or_refused_per_the_table(
    connector_type, api_type, auth_type
):
    connector = connector_for(connector_type, api_type, auth_type)
    allowed = auth_type in ALLOWED.get((connector_type, api_type), set())
    if allowed:
        connector.full_clean(validate_unique=False)
        return
    with pytest.raises(ValidationError) as caught:
        connector.full_clean(validate_unique=False)
    errors = caught.value.message_dict
    assert set(errors) & {"api_type", "auth_type"}
    message = " ".join(errors.get("api_type", []) + errors.get("auth_type", []))
    assert "Allowed:" in message or "choose one of:" in message


def test_a_refused_api_type_names_the_allowed_ones():
    connector = connector_for("nav", "rest", "basic")
    with pytest.raises(ValidationError) as caught:
        connector.full_clean(validate_unique=False)
    assert caught.value.message_dict["api_type"] == [
        "Microsoft Dynamics NAV does not support API type REST (JSON). Allowed: SOAP (soap)."
    ]


def test_ntlm_with_rest_names_the_rest_auth_types():
    connector = connector_for("bc_onprem", "rest", "ntlm")
    with pytest.raises(ValidationError) as caught:
        connector.full_clean(validate_unique=False)
    [message] = caught.value.message_dict["auth_type"]
    assert message.startswith("NTLM authentication works only with the SOAP API type.")
    assert "Basic (basic)" in message and "NTLM (ntlm)" not in message.split("choose")[1]


def test_a_refused_auth_type_names_the_allowed_ones():
    connector = connector_for("bc_online", "soap", "ntlm")
    with pytest.raises(ValidationError) as caught:
        connector.full_clean(validate_unique=False)
    assert caught.value.message_dict["auth_type"] == [
        "Business Central online does not support authentication NTLM. Allowed: Basic (basic), "
        "Microsoft Entra ID (entra_id), OAuth2 client credentials (client secret basic) "
        "(oauth2_basic), OAuth2 client credentials (client secret post) (oauth2_post)."
    ]


@pytest.mark.parametrize(
    ("auth_type", "missing"),
    [
        ("basic", "password"),
        ("entra_id", "tenant_id"),
        ("oauth2_post", "token_url"),
        ("oauth2_basic", "client_secret"),
    ],
)
def test_an_auth_type_needs_its_fields(auth_type, missing):
    connector = connector_for("webhook", "rest", auth_type)
    setattr(connector, missing, "")
    with pytest.raises(ValidationError) as caught:
        connector.full_clean(validate_unique=False)
    [message] = caught.value.message_dict[missing]
    assert message.startswith(f"{AuthType(auth_type).label} authentication needs a")


def test_source_app_is_required_and_at_most_30_characters():
    connector = connector_for("webhook", "rest", "none")
    connector.source_app = ""
    with pytest.raises(ValidationError) as caught:
        connector.full_clean(validate_unique=False)
    assert "source_app" in caught.value.message_dict
    connector.source_app = "X" * 31
    with pytest.raises(ValidationError) as caught:
        connector.full_clean(validate_unique=False)
    assert "at most 30 characters" in caught.value.message_dict["source_app"][0]


def test_crud_types_default_to_all_three_and_refuse_unknown_codes():
    connector = connector_for("webhook", "rest", "none")
    assert connector.crud_types == ["create", "update", "delete"]
    connector.crud_types = ["delete", "insert"]
    with pytest.raises(ValidationError) as caught:
        connector.full_clean(validate_unique=False)
    assert caught.value.message_dict["crud_types"] == [
        "Unknown value(s) insert; allowed: create, update, delete."
    ]


def test_the_uri_must_be_absolute_http():
    connector = connector_for("webhook", "rest", "none")
    connector.uri = "ftp://files.example.test/drop"
    with pytest.raises(ValidationError) as caught:
        connector.full_clean(validate_unique=False)
    assert caught.value.message_dict["uri"] == ["Enter an absolute http(s) URL."]


def test_payload_style_is_for_webhooks_only():
    connector = connector_for("bc_online", "rest", "basic")
    connector.payload_style = "dimescheduler"
    with pytest.raises(ValidationError) as caught:
        connector.full_clean(validate_unique=False)
    assert "Only webhook connectors" in caught.value.message_dict["payload_style"][0]


def test_a_retry_schedule_override_is_parsed_and_bad_ones_are_named():
    connector = connector_for("webhook", "rest", "none")
    connector.retry_schedule = "0, 10s, 2m, 1h"
    connector.full_clean(validate_unique=False)
    assert connector.retry_delays() == (0, 10, 120, 3600)
    connector.retry_schedule = "0, soon"
    with pytest.raises(ValidationError) as caught:
        connector.full_clean(validate_unique=False)
    assert caught.value.message_dict["retry_schedule"][0].startswith("'soon' is not a delay")


@pytest.mark.django_db
def test_crud_types_round_trip_and_filter_by_membership():
    connector = connector_for("webhook", "rest", "none")
    connector.crud_types = ["delete", "create"]
    connector.save()
    connector.refresh_from_db()
    assert connector.crud_types == ["create", "delete"]
    assert list(Connector.objects.filter(crud_types__contains="delete")) == [connector]
    assert not Connector.objects.filter(crud_types__contains="update").exists()
