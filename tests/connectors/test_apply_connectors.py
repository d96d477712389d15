"""`manage.py apply_connectors FILE.json [--dry-run]` (DESIGN.md, Commands)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from connectors.models import Connector

BC_SECRET = "bc-client-secret-Zq81~x"
NAV_PASSWORD = "nav-password-Lk29!"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "8f2c1d1e-1111-2222-3333-444455556666"


def bc_online(**changes):
    entry = {
        "name": "BC prod",
        "description": "Business Central production",
        "type": "bc_online",
        "uri": "https://api.businesscentral.dynamics.com/v2.0/prod/ODataV4/",
        "api_type": "rest",
        "source_app": "BCPROD",
        "auth_type": "entra_id",
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "client_secret": {"env": "BC_CLIENT_SECRET"},
    }
    return {**entry, **changes}


def nav(**changes):
    entry = {
        "name": "NAV",
        "type": "nav",
        "enabled": True,
        "uri": "https://nav.example.test:7047/DynamicsNAV/WS/CRONUS/Page/Appointment",
        "api_type": "soap",
        "source_app": "NAVPROD",
        "crud_types": ["create", "update"],
        "auth_type": "basic",
        "login": "svc-dime",
        "password": NAV_PASSWORD,
        "timeout_s": 20,
    }
    return {**entry, **changes}


@pytest.fixture(autouse=True)
def bc_secret(monkeypatch):
    monkeypatch.setenv("BC_CLIENT_SECRET", BC_SECRET)


@pytest.fixture
def write(tmp_path: Path):
    def write(data, name: str = "connectors.json") -> str:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
        return str(path)

    return write


def apply(path: str, *args: str) -> str:
    """The command's output (stdout and stderr together)."""
    out, err = StringIO(), StringIO()
    call_command("apply_connectors", path, *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def apply_error(path: str, *args: str) -> str:
    with pytest.raises(CommandError) as caught:
        apply(path, *args)
    return str(caught.value)


@pytest.mark.django_db
def test_it_creates_connectors_and_prints_one_line_each(write):
    output = apply(write([bc_online(), nav()]))

    assert output.splitlines() == [
        "create BC prod",
        "create NAV",
        "2 connectors: 2 created, 0 updated, 0 unchanged.",
    ]
    bc = Connector.objects.get(name="BC prod")
    assert (bc.type, bc.api_type, bc.auth_type) == ("bc_online", "rest", "entra_id")
    assert (bc.tenant_id, bc.client_id, bc.client_secret) == (TENANT, CLIENT, BC_SECRET)
    assert bc.enabled is True and bc.crud_types == ["create", "update", "delete"]  # defaults
    assert bc.timeout_s == 15 and bc.description == "Business Central production"
    navision = Connector.objects.get(name="NAV")
    assert navision.password == NAV_PASSWORD
    assert navision.crud_types == ["create", "update"] and navision.timeout_s == 20


@pytest.mark.django_db
def test_secrets_are_stored_encrypted(write):
    apply(write([nav()]))

    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM connectors_connector WHERE name = 'NAV'")
        [(stored,)] = cursor.fetchall()
    assert stored and NAV_PASSWORD not in stored


@pytest.mark.django_db
def test_an_update_sets_only_the_keys_given_and_names_them(write):
    apply(write([nav()]))

    output = apply(write([{"name": "NAV", "enabled": False, "uri": "https://nav2.example.test/ws"}]))

    assert output.splitlines() == [
        "update NAV: enabled, uri",
        "1 connector: 0 created, 1 updated, 0 unchanged.",
    ]
    navision = Connector.objects.get(name="NAV")
    assert navision.enabled is False and navision.uri == "https://nav2.example.test/ws"
    assert (navision.login, navision.password) == ("svc-dime", NAV_PASSWORD)
    assert navision.crud_types == ["create", "update"] and navision.timeout_s == 20


@pytest.mark.django_db
def test_applying_the_same_file_again_reports_unchanged(write):
    path = write([bc_online(), nav()])
    apply(path)
    updated_at = Connector.objects.get(name="NAV").updated_at

    output = apply(path)

    assert output.splitlines() == [
        "unchanged BC prod",
        "unchanged NAV",
        "2 connectors: 0 created, 0 updated, 2 unchanged.",
    ]
    assert Connector.objects.get(name="NAV").updated_at == updated_at


@pytest.mark.django_db
def test_retry_schedule_is_accepted(write):
    apply(write([nav(retry_schedule="0, 30s, 5m")]))

    assert Connector.objects.get(name="NAV").retry_delays() == (0, 30, 300)


@pytest.mark.django_db
def test_dry_run_reports_a_create_and_writes_nothing(write):
    output = apply(write([bc_online(), nav()]), "--dry-run")

    assert output.splitlines() == [
        "create BC prod",
        "create NAV",
        "Dry run, nothing written: 2 to create, 0 to update, 0 unchanged.",
    ]
    assert not Connector.objects.exists()


@pytest.mark.django_db
def test_dry_run_names_a_changed_secret_without_its_value_and_writes_nothing(write):
    apply(write([nav()]))

    new_password = "brand-new-password-Qw7"
    output = apply(write([nav(password=new_password, timeout_s=25)]), "--dry-run")

    assert output.splitlines() == [
        "update NAV: password, timeout_s",
        "Dry run, nothing written: 0 to create, 1 to update, 0 unchanged.",
    ]
    assert new_password not in output
    navision = Connector.objects.get(name="NAV")
    assert (navision.password, navision.timeout_s) == (NAV_PASSWORD, 20)


@pytest.mark.django_db
def test_a_secret_is_read_from_the_environment(write, monkeypatch):
    monkeypatch.setenv("NAV_PASSWORD", "from-the-environment-1")

    output = apply(write([nav(password={"env": "NAV_PASSWORD"})]))

    assert "from-the-environment-1" not in output
    assert Connector.objects.get(name="NAV").password == "from-the-environment-1"


@pytest.mark.django_db
def test_a_missing_environment_variable_names_entry_field_and_variable(write, monkeypatch):
    monkeypatch.delenv("BC_CLIENT_SECRET")
    path = write([nav(), bc_online()])

    message = apply_error(path)

    assert message == (
        f"1 error in {path}; nothing written:\n"
        "  entry 2 ('BC prod'): client_secret: environment variable BC_CLIENT_SECRET is not set"
    )
    assert not Connector.objects.exists()


@pytest.mark.django_db
def test_an_empty_environment_variable_is_an_error(write, monkeypatch):
    monkeypatch.setenv("BC_CLIENT_SECRET", "")

    message = apply_error(write([bc_online()]))

    assert message.splitlines()[1:] == [
        "  entry 1 ('BC prod'): client_secret: environment variable BC_CLIENT_SECRET is empty "
        '(use "" to clear a secret)'
    ]


@pytest.mark.django_db
def test_a_null_or_absent_secret_keeps_the_stored_one_and_empty_clears_it(write):
    apply(write([nav()]))

    assert apply(write([nav(password=None)])).splitlines()[0] == "unchanged NAV"
    entry = nav()
    del entry["password"]
    assert apply(write([entry])).splitlines()[0] == "unchanged NAV"
    assert Connector.objects.get(name="NAV").password == NAV_PASSWORD

    output = apply(write([nav(auth_type="none", login="", password="")]))

    assert output.splitlines()[0] == "update NAV: auth_type, login, password"
    assert Connector.objects.get(name="NAV").password == ""


@pytest.mark.django_db
def test_secrets_never_appear_in_the_output(write, monkeypatch):
    signing = "whsec_c2VjcmV0LXNpZ25pbmctc2VjcmV0"
    webhook = {
        "name": "Hook", "type": "webhook", "uri": "https://hooks.example.test/dime",
        "api_type": "rest", "source_app": "WEB", "auth_type": "oauth2_post",
        "token_url": "https://login.example.test/token", "client_id": "cid",
        "client_secret": "hook-client-secret-44", "signing_secret": signing,
    }
    secrets = [BC_SECRET, NAV_PASSWORD, signing, "hook-client-secret-44"]
    path = write([bc_online(), nav(), webhook])
    outputs = [apply(path, "--dry-run"), apply(path)]
    changed = [bc_online(), nav(password="other-secret-9", timeout_s=99), webhook]
    outputs.append(apply_error(write(changed)))  # an error in an entry holding a secret
    outputs.append(apply(write([nav(password="other-secret-9")]), "--dry-run"))

    for output in outputs:
        for secret in [*secrets, "other-secret-9"]:
            assert secret not in output


@pytest.mark.django_db
def test_one_bad_entry_writes_nothing_not_even_the_good_ones(write):
    apply(write([nav()]))

    message = apply_error(write([
        bc_online(),
        nav(uri="https://nav-new.example.test/ws"),
        nav(name="NAV 2", api_type="rest"),
    ]))

    assert message.splitlines()[1:] == [
        "  entry 3 ('NAV 2'): api_type: Microsoft Dynamics NAV does not support API type "
        "REST (JSON). Allowed: SOAP (soap).",
    ]
    assert list(Connector.objects.values_list("name", "uri")) == [("NAV", nav()["uri"])]


@pytest.mark.django_db
def test_every_error_names_its_entry_and_field(write):
    path = write([
        nav(enabled="yes", timeout_s="20"),
        bc_online(crud_types="create"),
        {"name": "Hook", "type": "webhook", "uri": "ftp://hooks.example.test", "api_type": "rest",
         "source_app": "WEB", "auth_type": "none", "crud_types": ["create", "insert"]},
        {"type": "nav"},
        "NAV",
        nav(name="NAV 3", password=12345, source_app=None),
        nav(name="NAV 4", timeout_s=90, client_secret={"env": ""}),
        nav(name="Hook", source_app="OTHER"),
    ])

    message = apply_error(path)

    assert message == "\n".join([
        f"11 errors in {path}; nothing written:",
        "  entry 1 ('NAV'): enabled: must be true or false, not a string",
        "  entry 1 ('NAV'): timeout_s: must be a whole number of seconds, not a string",
        "  entry 2 ('BC prod'): crud_types: must be a list of strings such as "
        '["create", "update", "delete"]',
        "  entry 3 ('Hook'): crud_types: Unknown value(s) insert; allowed: create, update, "
        "delete.",
        "  entry 3 ('Hook'): uri: Enter an absolute http(s) URL.",
        "  entry 4: name: is required (connectors are matched by name)",
        "  entry 5: expected an object, not a string",
        "  entry 6 ('NAV 3'): source_app: must be a string, not null",
        "  entry 6 ('NAV 3'): password: must be a string, null or {\"env\": \"VARIABLE\"}, "
        "not a number",
        "  entry 7 ('NAV 4'): client_secret: an object here must be {\"env\": \"VARIABLE\"}, "
        "naming a variable",
        "  entry 8 ('Hook'): name: 'Hook' is also used by entry 3 ('Hook').",
    ])
    assert not Connector.objects.exists()


@pytest.mark.django_db
def test_the_model_rules_name_the_entry_and_field(write):
    path = write([nav(timeout_s=90), nav(name="NAV 2", auth_type="ntlm", login="")])

    message = apply_error(path)

    assert message.splitlines()[1:] == [
        "  entry 1 ('NAV'): timeout_s: Ensure this value is less than or equal to 30.",
        "  entry 2 ('NAV 2'): login: NTLM authentication needs a login.",
    ]


@pytest.mark.django_db
def test_a_new_connector_without_required_keys_names_them(write):
    message = apply_error(write([{"name": "Bare"}]))

    assert message.splitlines()[1:] == [
        "  entry 1 ('Bare'): type: This field cannot be blank.",
        "  entry 1 ('Bare'): uri: This field cannot be blank.",
        "  entry 1 ('Bare'): api_type: This field cannot be blank.",
        "  entry 1 ('Bare'): source_app: This field cannot be blank.",
        # auth_type defaults to basic
        "  entry 1 ('Bare'): login: Basic authentication needs a login.",
        "  entry 1 ('Bare'): password: Basic authentication needs a password.",
    ]


@pytest.mark.django_db
def test_an_unknown_key_suggests_the_closest_one(write):
    message = apply_error(write([nav(clientsecret="x", colour="blue")]))

    assert message.splitlines()[1:] == [
        "  entry 1 ('NAV'): clientsecret: unknown key; did you mean 'client_secret'?",
        "  entry 1 ('NAV'): colour: unknown key; allowed: name, description, type, enabled, "
        "uri, api_type, source_app, source_type, crud_types, auth_type, login, password, "
        "tenant_id, client_id, client_secret, token_url, scope, signing_secret, timeout_s, "
        "payload_style, retry_schedule",
    ]


def test_invalid_json_names_line_and_column(write):
    path = write('[\n  {"name": "NAV",\n   "type": "nav"\n   "uri": "x"}\n]')

    assert apply_error(path) == (
        f"1 error in {path}; nothing written:\n"
        "  invalid JSON at line 4, column 4: Expecting ',' delimiter"
    )


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ('{"name": "NAV"}', "expected a JSON list of connector objects, not an object"),
        ("", "invalid JSON at line 1, column 1: Expecting value"),
    ],
)
def test_a_file_that_is_not_a_list_of_objects_is_refused(write, content, error):
    assert apply_error(write(content)).splitlines()[1:] == [f"  {error}"]


def test_an_unreadable_file_is_reported(tmp_path):
    path = str(tmp_path / "missing.json")

    assert apply_error(path) == (
        f"1 error in {path}; nothing written:\n  cannot read the file: No such file or directory"
    )


def test_a_file_that_is_not_utf8_is_reported(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"name": "Caf\u00e9"}]'.encode("latin-1"))

    assert apply_error(str(path)).splitlines()[1:] == [
        '  the file is not UTF-8 text (byte 15); save it as UTF-8 (in Excel: "CSV UTF-8")'
    ]


@pytest.mark.django_db
def test_a_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([nav()]).encode())

    assert apply(str(path)).splitlines()[0] == "create NAV"


def test_from_the_command_line_an_error_exits_non_zero_with_the_message(write):
    path = write("[1,")
    manage = Path(__file__).resolve().parents[2] / "manage.py"

    result = subprocess.run(
        [sys.executable, str(manage), "apply_connectors", path],
        capture_output=True, text=True, env=os.environ.copy(), timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: 1 error in {path}; nothing written:",
        "  invalid JSON at line 1, column 4: Expecting value",
    ]
