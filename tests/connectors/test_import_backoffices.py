"""`manage.py import_backoffices FILE [--dry-run]`: legacy "Multi back office" rows."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from connectors.models import Connector

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "8f2c1d1e-1111-2222-3333-444455556666"
SECRET = "Xy8Q~abc.DEF+ghi/jkl=="  # an Entra-style secret with a '+' and '='
NAV_WS = "https://nav.example.test:7047/DynamicsNAV/WS/CRONUS/Page/Appointment"
BC_WS = "https://api.businesscentral.dynamics.com/v2.0/prod/WS/CRONUS/Page/Appointment"
CODES = "source_app,send_appointments,web_service,back_office,login,password"
CAPTIONS = (
    "Source Application;Send appointments to back office;Web Service;Back Office;Login;Password"
)
BC_ONLINE_AUTH = (
    "Business Central online does not support authentication None (service account). "
    "Allowed: Basic (basic), Microsoft Entra ID (entra_id), "
    "OAuth2 client credentials (client secret basic) (oauth2_basic), "
    "OAuth2 client credentials (client secret post) (oauth2_post)."
)


@pytest.fixture
def write(tmp_path: Path):
    def write(content, name: str = "backoffices.csv") -> str:
        path = tmp_path / name
        if isinstance(content, list | dict):
            content = json.dumps(content, indent=2)
        path.write_text(content, encoding="utf-8", newline="")
        return str(path)

    return write


def csv_file(*rows: str, header: str = CODES) -> str:
    return "\r\n".join([header, *rows]) + "\r\n"


def run(path: str, *args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("import_backoffices", path, *args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def run_error(path: str, *args: str) -> list[str]:
    """The error lines the user sees, after the heading (which is checked here)."""
    with pytest.raises(CommandError) as caught:
        run(path, *args)
    heading, *lines = str(caught.value).splitlines()
    assert heading.endswith(f" in {path}; nothing written:")
    return [line.removeprefix("  ") for line in lines]


@pytest.mark.django_db
def test_a_csv_with_the_codes_as_headers_imports_each_row(write):
    path = write(csv_file(
        f"NAVPROD,1,{NAV_WS},nav,svc-dime,nav-pass-1",
        f"BCPROD,true,{BC_WS},bc_online,{TENANT},client_id={CLIENT}&client_secret={SECRET}",
    ))

    output = run(path)

    assert output.splitlines() == [
        "row 2: create NAVPROD",
        "row 3: create BCPROD",
        "2 connectors: 2 created, 0 updated, 0 unchanged.",
    ]
    navision = Connector.objects.get(name="NAVPROD")
    assert (navision.type, navision.api_type, navision.auth_type) == ("nav", "soap", "basic")
    assert (navision.source_app, navision.uri, navision.enabled) == ("NAVPROD", NAV_WS, True)
    assert (navision.login, navision.password) == ("svc-dime", "nav-pass-1")
    assert navision.crud_types == ["create", "update", "delete"]
    assert navision.description == "Imported from Multi back office (row 2)"


@pytest.mark.django_db
def test_a_bc_online_row_with_a_tenant_and_client_credentials_becomes_entra_id(write):
    run(write(csv_file(
        f"BCPROD,x,{BC_WS},bc_online,{TENANT},client_secret={SECRET}&client_id={CLIENT}",
        f"BCTEST,x,{BC_WS},bc_online,contoso.onmicrosoft.com,client_id=app-2&client_secret=s%26t",
    )))

    bc = Connector.objects.get(name="BCPROD")
    assert (bc.type, bc.api_type, bc.auth_type) == ("bc_online", "soap", "entra_id")
    assert (bc.tenant_id, bc.client_id, bc.client_secret) == (TENANT, CLIENT, SECRET)
    assert (bc.login, bc.password) == ("", "")
    test = Connector.objects.get(name="BCTEST")
    assert test.auth_type == "entra_id" and test.tenant_id == "contoso.onmicrosoft.com"
    assert (test.client_id, test.client_secret) == ("app-2", "s&t")  # percent-decoded


@pytest.mark.django_db
def test_a_csv_with_the_seed_captions_as_headers_bom_and_semicolons_imports(tmp_path):
    path = tmp_path / "multi-backoffice.csv"
    content = csv_file(
        f"NAVPROD;Yes;{NAV_WS};Microsoft Dynamics NAV;;",
        f"BCOP;N;{NAV_WS};Business Central on-premise;CORP\\svc-dime;pw-2",
        header=CAPTIONS.upper().replace("WEB SERVICE", "web service"),
    )
    path.write_bytes(b"\xef\xbb\xbf" + content.encode())

    output = run(str(path))

    assert output.splitlines()[:2] == ["row 2: create NAVPROD", "row 3: create BCOP"]
    assert Connector.objects.get(name="NAVPROD").enabled is True
    onprem = Connector.objects.get(name="BCOP")
    assert (onprem.type, onprem.enabled, onprem.auth_type) == ("bc_onprem", False, "ntlm")
    assert (onprem.login, onprem.password) == ("CORP\\svc-dime", "pw-2")


@pytest.mark.django_db
def test_a_json_file_imports_with_codes_or_captions_as_keys(write):
    path = write([
        {"source_app": "NAVPROD", "send_appointments": True, "web_service": NAV_WS,
         "back_office": "NAV", "login": None, "password": None},
        {"Source Application": "BCPROD", "Send appointments to back office": "no",
         "Web Service": BC_WS, "Back Office": "Business Central SaaS", "Login": TENANT,
         "Password": f"client_id={CLIENT}&client_secret={SECRET}"},
    ], name="backoffices.json")

    output = run(path)

    assert output.splitlines()[:2] == ["entry 1: create NAVPROD", "entry 2: create BCPROD"]
    navision = Connector.objects.get(name="NAVPROD")
    assert (navision.auth_type, navision.enabled) == ("none", True)
    assert navision.description == "Imported from Multi back office (entry 1)"
    bc = Connector.objects.get(name="BCPROD")
    assert (bc.type, bc.enabled, bc.auth_type, bc.client_secret) == (
        "bc_online", False, "entra_id", SECRET,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("content", "name"), [
    (f'[{{"source_app": "A", "send_appointments": 1, "web_service": "{NAV_WS}", '
     '"back_office": "nav"}]', "export.txt"),
    (csv_file(f"A;1;{NAV_WS};nav;;", header=CODES.replace(",", ";")), "export"),
])
def test_the_format_is_detected_from_the_content_without_an_extension(write, content, name):
    run(write(content, name=name))

    assert Connector.objects.get(name="A").type == "nav"


@pytest.mark.django_db
def test_blank_credentials_on_nav_mean_the_service_account(write):
    run(write(csv_file(f"NAVPROD,y,{NAV_WS},nav,,")))

    navision = Connector.objects.get(name="NAVPROD")
    assert (navision.auth_type, navision.login, navision.password) == ("none", "", "")


@pytest.mark.django_db
def test_blank_credentials_on_bc_online_are_refused_for_that_row(write):
    path = write(csv_file(
        f"NAVPROD,y,{NAV_WS},nav,,",
        f"BCPROD,y,{BC_WS},bc_online,,",
    ))

    assert run_error(path) == [f"row 3: auth_type: {BC_ONLINE_AUTH}"]
    assert not Connector.objects.exists()


@pytest.mark.django_db
def test_a_windows_login_is_ntlm_on_nav_and_basic_on_bc_online(write):
    run(write(csv_file(
        f"NAVPROD,y,{NAV_WS},nav,CRONUS\\svc,pw-1",
        f"BCPROD,y,{BC_WS},bc_online,CRONUS\\svc,pw-2",
        f"NAVTEST,y,{NAV_WS},nav,svc@cronus.example,pw-3",
    )))

    assert Connector.objects.get(name="NAVPROD").auth_type == "ntlm"
    assert Connector.objects.get(name="BCPROD").auth_type == "basic"
    assert Connector.objects.get(name="NAVTEST").auth_type == "basic"


@pytest.mark.django_db
@pytest.mark.parametrize(("cell", "code"), [
    ("nav", "nav"), ("NAV", "nav"), ("Microsoft Dynamics NAV", "nav"),
    ("bc_onprem", "bc_onprem"), ("Business Central on-prem", "bc_onprem"),
    ("business central ON-PREMISE", "bc_onprem"),
    ("BC_ONLINE", "bc_online"), ("Business Central online", "bc_online"),
    ("Business Central SaaS", "bc_online"), ("BC online", "bc_online"),
])
def test_back_office_accepts_codes_and_readable_names(write, cell, code):
    run(write(csv_file(f"APP,y,{BC_WS},{cell},svc,pw")))

    assert Connector.objects.get(name="APP").type == code


@pytest.mark.django_db
@pytest.mark.parametrize(("cell", "enabled"), [
    ("true", True), ("Yes", True), ("1", True), ("y", True), ("X", True),
    ("false", False), ("NO", False), ("0", False), ("n", False), ("", False),
])
def test_send_appointments_accepts_the_usual_yes_and_no_spellings(write, cell, enabled):
    run(write(csv_file(f"APP,{cell},{NAV_WS},nav,,")))

    assert Connector.objects.get(name="APP").enabled is enabled


@pytest.mark.django_db
def test_input_errors_name_the_row_and_the_legacy_column(write):
    path = write(csv_file(
        f"GOOD,y,{NAV_WS},nav,,",
        f"SAP,y,{NAV_WS},sap,,",
        f"MAYBE,maybe,{NAV_WS},nav,,",
        f"NOPASS,y,{NAV_WS},nav,svc-dime,",
        f"NOLOGIN,y,{NAV_WS},nav,,secret-pw-1",
        "BADURI,y,nav.example.test/ws,nav,,",
        f",y,{NAV_WS},,,",
    ))

    assert run_error(path) == [
        "row 3: back_office: 'sap' is not a back office type; allowed: nav, bc_onprem, bc_online",
        "row 4: send_appointments: 'maybe' is not a yes/no value; use true/false, yes/no, 1/0, "
        "y/n or x/blank",
        "row 5: password: is blank but login is set; give both, or leave both blank for the "
        "service account",
        "row 6: login: is blank but password is set; give both, or leave both blank for the "
        "service account",
        "row 7: web_service: Enter an absolute http(s) URL.",
        "row 8: source_app: is blank",
        "row 8: back_office: is blank; allowed: nav, bc_onprem, bc_online",
    ]
    assert not Connector.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("login", "password", "error"), [
    ("svc-dime", f"client_id={CLIENT}&client_secret=s1",
     "row 2: login: 'svc-dime' is not a tenant ID (a GUID or a domain such as "
     "contoso.onmicrosoft.com), which a client_id=…&client_secret=… password needs"),
    (TENANT, f"client_id={CLIENT}",
     "row 2: password: client_secret is missing or blank in client_id=…&client_secret=…"),
    (TENANT, f"client_id={CLIENT}&client_secret=",
     "row 2: password: client_secret is missing or blank in client_id=…&client_secret=…"),
    (TENANT, "client_id=a&client_id=b&client_secret=s1",
     "row 2: password: client_id is given more than once in client_id=…&client_secret=…"),
    (TENANT, f"client_id={CLIENT}&client_secret=s1&part=of-secret",
     "row 2: password: client_id=…&client_secret=… has parts other than client_id and "
     "client_secret (write an & inside the secret as %26)"),
])
def test_a_malformed_client_credentials_password_is_refused(write, login, password, error):
    path = write(csv_file(f"BCPROD,y,{BC_WS},bc_online,{login},{password}"))

    lines = run_error(path)

    assert lines == [error]
    assert "of-secret" not in error


@pytest.mark.django_db
def test_client_credentials_on_nav_are_refused_by_the_model(write):
    path = write(csv_file(f"NAVPROD,y,{NAV_WS},nav,{TENANT},client_id=a&client_secret=b"))

    assert run_error(path) == [
        "row 2: auth_type: Microsoft Dynamics NAV does not support authentication Microsoft "
        "Entra ID. Allowed: None (service account) (none), Basic (basic), NTLM (ntlm), "
        "Windows (Negotiate) (windows)."
    ]


@pytest.mark.django_db
def test_rows_sharing_a_source_app_get_distinct_names_in_row_order(write):
    output = run(write(csv_file(
        f"NAVPROD,y,{NAV_WS},nav,,",
        f"BCPROD,y,{BC_WS},bc_onprem,,",
        f"NAVPROD,y,{NAV_WS}2,nav,,",
        f"NAVPROD,n,{NAV_WS}3,nav,,",
    )))

    assert output.splitlines()[:4] == [
        "row 2: create NAVPROD",
        "row 3: create BCPROD",
        "row 4: create NAVPROD (2)",
        "row 5: create NAVPROD (3)",
    ]
    assert Connector.objects.get(name="NAVPROD (3)").uri == f"{NAV_WS}3"
    assert set(Connector.objects.values_list("source_app", flat=True)) == {"NAVPROD", "BCPROD"}


@pytest.mark.django_db
def test_a_re_import_updates_the_same_connectors_instead_of_duplicating(write):
    first = write(csv_file(
        f"NAVPROD,y,{NAV_WS},nav,svc,pw-1",
        f"NAVPROD,y,{NAV_WS}2,nav,,",
    ))
    run(first)
    ids = dict(Connector.objects.values_list("name", "pk"))

    again = run(first)
    second = write(csv_file(
        f"NAVPROD,n,{NAV_WS},nav,svc,pw-2",
        f"NAVPROD,y,{NAV_WS}/v2,nav,,",
    ), name="second.csv")
    changed = run(second)

    assert again.splitlines() == [
        "row 2: unchanged NAVPROD",
        "row 3: unchanged NAVPROD (2)",
        "2 connectors: 0 created, 0 updated, 2 unchanged.",
    ]
    assert changed.splitlines() == [
        "row 2: update NAVPROD: enabled, password",
        "row 3: update NAVPROD (2): uri",
        "2 connectors: 0 created, 2 updated, 0 unchanged.",
    ]
    assert dict(Connector.objects.values_list("name", "pk")) == ids
    assert Connector.objects.get(name="NAVPROD").password == "pw-2"


@pytest.mark.django_db
def test_a_re_import_switching_to_the_service_account_clears_the_credentials(write):
    run(write(csv_file(f"NAVPROD,y,{NAV_WS},nav,svc,pw-1")))

    output = run(write(csv_file(f"NAVPROD,y,{NAV_WS},nav,,")))

    assert output.splitlines()[0] == "row 2: update NAVPROD: auth_type, login, password"
    navision = Connector.objects.get(name="NAVPROD")
    assert (navision.auth_type, navision.login, navision.password) == ("none", "", "")


@pytest.mark.django_db
def test_a_re_import_keeps_settings_the_legacy_rows_do_not_have(write):
    path = write(csv_file(f"NAVPROD,y,{NAV_WS},nav,,"))
    run(path)
    Connector.objects.filter(name="NAVPROD").update(timeout_s=25, source_type="SERVICE")

    assert run(path).splitlines()[0] == "row 2: unchanged NAVPROD"
    navision = Connector.objects.get(name="NAVPROD")
    assert (navision.timeout_s, navision.source_type) == (25, "SERVICE")


@pytest.mark.django_db
def test_dry_run_reports_and_writes_nothing(write):
    path = write(csv_file(
        f"NAVPROD,y,{NAV_WS},nav,svc,pw-1",
        f"BCPROD,y,{BC_WS},bc_online,{TENANT},client_id={CLIENT}&client_secret={SECRET}",
    ))

    output = run(path, "--dry-run")

    assert output.splitlines() == [
        "row 2: create NAVPROD",
        "row 3: create BCPROD",
        "Dry run, nothing written: 2 to create, 0 to update, 0 unchanged.",
    ]
    assert not Connector.objects.exists()
    run(path)
    changed = write(csv_file(f"NAVPROD,y,{NAV_WS},nav,svc,pw-new"), name="changed.csv")
    assert run(changed, "--dry-run").splitlines()[0] == "row 2: update NAVPROD: password"
    assert Connector.objects.get(name="NAVPROD").password == "pw-1"


@pytest.mark.django_db
def test_one_bad_row_writes_nothing_not_even_the_good_rows(write):
    run(write(csv_file(f"NAVPROD,y,{NAV_WS},nav,,")))

    path = write(csv_file(
        f"NAVPROD,n,{NAV_WS},nav,,",
        f"BCPROD,y,{BC_WS},bc_online,{TENANT},client_id={CLIENT}&client_secret={SECRET}",
        f"BAD,y,{NAV_WS},sap,,",
    ), name="bad.csv")

    assert run_error(path) == [
        "row 4: back_office: 'sap' is not a back office type; allowed: nav, bc_onprem, bc_online"
    ]
    assert list(Connector.objects.values_list("name", "enabled")) == [("NAVPROD", True)]


@pytest.mark.django_db
def test_passwords_and_client_secrets_never_appear_in_the_output(write):
    secrets = ["nav-pass-Secret1", SECRET, "bc-pass-Secret3", "tail-Secret4"]
    good = write(csv_file(
        f"NAVPROD,y,{NAV_WS},nav,svc,{secrets[0]}",
        f"BCPROD,y,{BC_WS},bc_online,{TENANT},client_id={CLIENT}&client_secret={secrets[1]}",
    ))
    bad = write(csv_file(
        f"NAVPROD,maybe,{NAV_WS},nav,svc,{secrets[0]}",
        f"BCPROD,y,{BC_WS},bc_online,not-a-tenant,client_id={CLIENT}&client_secret={secrets[1]}",
        f"BCTEST,y,nowhere,bc_online,svc,{secrets[2]}",
        f"BCDEV,y,{BC_WS},bc_online,{TENANT},client_id=a&client_secret=b&{secrets[3]}",
        f"NOLOGIN,y,{BC_WS},bc_online,,{secrets[2]}",
    ), name="bad.csv")

    outputs = [run(good, "--dry-run"), run(good), run(good)]
    with pytest.raises(CommandError) as caught:
        run(bad)
    outputs.append(str(caught.value))

    assert len(str(caught.value).splitlines()) == 6
    for output in outputs:
        for secret in secrets:
            assert secret not in output


@pytest.mark.django_db
def test_header_problems_are_reported_before_any_row(write):
    path = write(csv_file(
        f"NAVPROD,y,{NAV_WS},nav,,,",
        header="Source App,send_appointments,Back Office,login,LOGIN,colour",
    ))

    assert run_error(path) == [
        "header: 'Source App' is not a known column; expected source_app, send_appointments, "
        "web_service, back_office, login, password or the captions Source Application, "
        "Send appointments to back office, Web Service, Back Office, Login, Password",
        "header: 'colour' is not a known column; expected source_app, send_appointments, "
        "web_service, back_office, login, password or the captions Source Application, "
        "Send appointments to back office, Web Service, Back Office, Login, Password",
        "header: column login appears 2 times",
        "header: missing columns source_app (Source Application), web_service (Web Service)",
    ]


@pytest.mark.django_db
def test_csv_row_numbers_are_line_numbers_and_blank_lines_are_skipped(write):
    path = write(
        f"{CODES}\n\nNAVPROD,y,{NAV_WS},nav,,\n,,,,,\n"
        f'"BC\nPROD",y,{NAV_WS},erp,,\nBAD,y,{NAV_WS},sap,,\nEXTRA,y,{NAV_WS},nav,,,oops\n'
    )

    assert run_error(path) == [
        "row 5: back_office: 'erp' is not a back office type; allowed: nav, bc_onprem, bc_online",
        "row 7: back_office: 'sap' is not a back office type; allowed: nav, bc_onprem, bc_online",
        "row 8: has more fields than the header row",
    ]


@pytest.mark.django_db
def test_json_problems_name_the_entry(write):
    path = write([
        {"source_app": "A", "send_appointments": "y", "web_service": NAV_WS, "back_office": "nav",
         "Back Office": "nav"},
        ["not", "an", "object"],
        {"source_app": "C", "send_appointments": 2, "web_service": NAV_WS, "back_office": "nav",
         "login": 42, "password": 1234, "colour": "blue"},
        {"source_app": "D", "send_appointments": True, "back_office": "nav"},
    ], name="rows.json")

    assert run_error(path) == [
        "entry 1: back_office: is given twice",
        "entry 2: expected an object, not a list",
        "entry 3: colour: unknown column",
        "entry 3: send_appointments: must be a string, not a number",
        "entry 3: login: must be a string, not a number",
        "entry 3: password: must be a string, not a number",
        "entry 4: web_service: is missing",
    ]


@pytest.mark.parametrize(("content", "name", "error"), [
    ('{"source_app": "A"}', "rows.json", "expected a JSON list of row objects, not an object"),
    ('[{"source_app": "A",}]', "rows.json",
     "invalid JSON at line 1, column 21: Expecting property name enclosed in double quotes"),
    ("[]", "rows.json", "the file has no rows"),
    (CODES + "\n", "rows.csv", "the file has no rows"),
    ("", "rows.csv", "the file is empty; expected a header row with: source_app, "
     "send_appointments, web_service, back_office, login, password"),
])
def test_an_unusable_file_is_reported(write, content, name, error):
    assert run_error(write(content, name=name)) == [error]


def test_an_unreadable_file_is_reported(tmp_path):
    assert run_error(str(tmp_path / "nope.csv")) == [
        "cannot read the file: No such file or directory"
    ]
