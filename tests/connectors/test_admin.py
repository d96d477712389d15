"""Admin smoke tests (Django test client): every changelist, form and action, and the secrets.

Secrets are write-only (DESIGN.md, Connector): the pages show only "set · ends in …abcd", the
column holds ciphertext and the admin's history (LogEntry) never holds a value.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from connectors import services
from connectors.models import ApiClient, Connector

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:connectors_connector_changelist")
ADD = reverse("admin:connectors_connector_add")
CLIENTS = reverse("admin:connectors_apiclient_changelist")
CLIENT_ADD = reverse("admin:connectors_apiclient_add")

LONG_PASSWORD = "correct-horse-battery-9876"
SHORT_PASSWORD = "hunter2"
CLIENT_SECRET = "oauth-client-secret-value-4242"

# One valid add-form entry per connector type (auth fields as that auth type needs them).
VALID_ENTRIES: dict[str, dict[str, str]] = {
    "bc_onprem": {"api_type": "soap", "auth_type": "ntlm", "login": "CRONUS\\svc-dime",
                  "password": LONG_PASSWORD},
    "bc_online": {"api_type": "rest", "auth_type": "entra_id",
                  "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                  "client_id": "8f2c1d1e-1111-2222-3333-444455556666",
                  "client_secret": CLIENT_SECRET},
    "nav": {"api_type": "soap", "auth_type": "basic", "login": "svc-dime",
            "password": LONG_PASSWORD},
    "webhook": {"api_type": "rest", "auth_type": "oauth2_post",
                "token_url": "https://127.0.0.1:9443/oauth2/token",
                "client_id": "dimeconnect", "client_secret": CLIENT_SECRET, "scope": "hooks.write"},
}


def form_data(**values: Any) -> dict[str, Any]:
    """What the connector form posts: every field, blank unless given."""
    data: dict[str, Any] = {
        "name": "BC Production", "description": "", "type": "nav", "enabled": "on",
        "uri": "https://bc.example.test/ws/Page/Appointment", "api_type": "soap",
        "source_app": "BCPROD", "source_type": "", "crud_types": ["create", "update", "delete"],
        "payload_style": "canonical", "timeout_s": "15", "retry_schedule": "",
        "auth_type": "none", "login": "", "password": "", "tenant_id": "", "client_id": "",
        "client_secret": "", "token_url": "", "scope": "", "signing_secret": "",
    }
    data.update(values)
    return data


def data_of(connector: Connector, **values: Any) -> dict[str, Any]:
    """The change form as the browser posts it back untouched: secret inputs blank."""
    fields = {
        name: getattr(connector, name)
        for name in ("name", "type", "uri", "api_type", "source_app", "auth_type", "login",
                     "tenant_id", "client_id", "token_url", "scope", "payload_style")
    }
    return form_data(**{**fields, "crud_types": connector.crud_types, **values})


def make_connector(**values: Any) -> Connector:
    fields: dict[str, Any] = {
        "name": "BC Production", "type": "nav", "api_type": "soap", "auth_type": "basic",
        "uri": "https://bc.example.test/ws/Page/Appointment", "source_app": "BCPROD",
        "login": "svc-dime", "password": LONG_PASSWORD,
    }
    fields.update(values)
    return services.connector_save(Connector(**fields))


def change_url(connector: Connector) -> str:
    return reverse("admin:connectors_connector_change", args=[connector.pk])


def raw_column(column: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM connectors_connector")  # noqa: S608 - fixed names
        return [row[0] for row in cursor.fetchall()]


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def secret_status_html(name: str, status: str) -> str:
    return f'<span class="secret-status" data-secret-status="{name}">{status}</span>'


# --- Changelists -----------------------------------------------------------------------------


def test_the_connector_changelist_renders_with_every_filter_and_a_search(admin_client):
    make_connector(name="NAV prod")
    make_connector(name="Hook", type="webhook", api_type="rest", source_app="HOOKAPP",
                   uri="https://hooks.example.test/in")
    make_connector(name="NAV test", source_app="BCTEST", enabled=False)

    assert admin_client.get(CHANGELIST).context["cl"].result_count == 3
    filtered = admin_client.get(
        CHANGELIST,
        {"type__exact": "nav", "enabled__exact": "1", "auth_type__exact": "basic",
         "source_app": "BCPROD"},
    )
    searched = admin_client.get(CHANGELIST, {"q": "hooks.example"})

    assert filtered.status_code == 200
    assert [c.name for c in filtered.context["cl"].result_list] == ["NAV prod"]
    assert searched.status_code == 200
    assert [c.name for c in searched.context["cl"].result_list] == ["Hook"]


def test_the_api_client_changelist_renders_with_its_filter_and_a_search(admin_client):
    services.api_client_create(name="BC prod", source_apps=["BCPROD"])
    retired, _ = services.api_client_create(name="Old NAV", source_apps=["NAV"])
    ApiClient.objects.filter(pk=retired.pk).update(is_active=False)

    everything = admin_client.get(CLIENTS)
    inactive = admin_client.get(CLIENTS, {"is_active__exact": "0"})
    searched = admin_client.get(CLIENTS, {"q": "prod"})

    assert everything.context["cl"].result_count == 2
    assert [c.name for c in inactive.context["cl"].result_list] == ["Old NAV"]
    assert [c.name for c in searched.context["cl"].result_list] == ["BC prod"]
    assert "BCPROD" in searched.content.decode()


# --- Add and change forms --------------------------------------------------------------------


@pytest.mark.parametrize("connector_type", list(VALID_ENTRIES))
def test_the_add_form_renders_for_each_connector_type(admin_client, connector_type):
    response = admin_client.get(ADD, {"type": connector_type})

    assert response.status_code == 200
    assert response.context["adminform"].form["type"].value() == connector_type
    content = response.content.decode()
    for heading in ("Basic info", "Connector info", "Authentication info"):
        assert f">{heading}<" in content
    assert ">Status</h2>" not in content  # nothing to show before the connector exists
    assert 'id="connector-rules"' in content
    assert "connectors/connector_form.js" in content


@pytest.mark.parametrize("connector_type", list(VALID_ENTRIES))
def test_the_change_form_renders_for_each_connector_type(admin_client, connector_type):
    connector = make_connector(name=f"{connector_type} connector", type=connector_type,
                               **VALID_ENTRIES[connector_type])

    response = admin_client.get(change_url(connector))

    assert response.status_code == 200
    content = response.content.decode()
    for heading in ("Basic info", "Connector info", "Authentication info", "Status"):
        assert f">{heading}<" in content
    assert "not tested yet" in content


@pytest.mark.parametrize("connector_type", list(VALID_ENTRIES))
def test_it_adds_a_valid_connector_of_each_type(admin_client, connector_type):
    entry = VALID_ENTRIES[connector_type]
    response = admin_client.post(
        ADD, form_data(name=f"{connector_type} connector", type=connector_type, **entry)
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    connector = Connector.objects.get(name=f"{connector_type} connector")
    assert (connector.type, connector.api_type, connector.auth_type) == (
        connector_type, entry["api_type"], entry["auth_type"]
    )
    for secret in ("password", "client_secret"):
        assert getattr(connector, secret) == entry.get(secret, "")


def test_it_generates_a_signing_secret_for_a_new_webhook(admin_client):
    admin_client.post(ADD, form_data(name="Hook", type="webhook", **VALID_ENTRIES["webhook"]))

    signing_secret = Connector.objects.get(name="Hook").signing_secret
    assert signing_secret.startswith("whsec_")
    assert len(signing_secret) > len("whsec_") + 30


def test_it_keeps_a_signing_secret_given_on_the_add_form(admin_client):
    given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    admin_client.post(ADD, form_data(name="Hook", type="webhook", signing_secret=given,
                                     **VALID_ENTRIES["webhook"]))

    assert Connector.objects.get(name="Hook").signing_secret == given


def test_it_refuses_an_api_type_the_connector_type_lacks_naming_the_allowed_ones(admin_client):
    response = admin_client.post(ADD, form_data(type="nav", api_type="rest", auth_type="none"))

    expected = "Microsoft Dynamics NAV does not support API type REST (JSON). Allowed: SOAP (soap)."
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["api_type"] == [expected]
    assert f"<li>{expected}</li>" in response.content.decode()
    assert not Connector.objects.exists()


def test_it_refuses_ntlm_over_rest_naming_the_auth_types_rest_allows(admin_client):
    response = admin_client.post(
        ADD,
        form_data(type="bc_onprem", api_type="rest", auth_type="ntlm", login="svc",
                  password=LONG_PASSWORD),
    )

    expected = (
        "NTLM authentication works only with the SOAP API type. With REST (JSON) choose one "
        "of: None (service account) (none), Basic (basic), Microsoft Entra ID (entra_id), "
        "OAuth2 client credentials (client secret basic) (oauth2_basic), "
        "OAuth2 client credentials (client secret post) (oauth2_post)."
    )
    assert response.context["adminform"].form.errors["auth_type"] == [expected]
    assert f"<li>{expected}</li>" in response.content.decode()


def test_it_never_echoes_a_typed_secret_on_a_refused_form(admin_client):
    response = admin_client.post(
        ADD, form_data(type="nav", api_type="rest", auth_type="basic", login="svc",
                       password=LONG_PASSWORD),
    )

    assert response.status_code == 200
    assert LONG_PASSWORD not in response.content.decode()


def test_a_refused_change_still_shows_the_stored_secret_as_set(admin_client):
    connector = make_connector()

    response = admin_client.post(change_url(connector), data_of(connector, api_type="rest"))

    assert response.status_code == 200
    content = response.content.decode()
    assert secret_status_html("password", "set · ends in …9876") in content
    assert LONG_PASSWORD not in content
    connector.refresh_from_db()
    assert connector.password == LONG_PASSWORD


# --- Secret inputs ---------------------------------------------------------------------------


def test_the_change_page_shows_a_long_secret_only_by_its_last_four_characters(admin_client):
    connector = make_connector(password=LONG_PASSWORD)

    content = admin_client.get(change_url(connector)).content.decode()

    assert LONG_PASSWORD not in content
    assert secret_status_html("password", "set · ends in …9876") in content
    assert 'name="password__clear"' in content


def test_the_change_page_shows_a_short_secret_only_as_set(admin_client):
    connector = make_connector(password=SHORT_PASSWORD)

    content = admin_client.get(change_url(connector)).content.decode()

    assert SHORT_PASSWORD not in content
    assert secret_status_html("password", "set") in content
    assert "ends in" not in content


def test_the_change_page_never_contains_any_stored_secret(admin_client):
    connector = make_connector(name="Hook", type="webhook", login="", password="",
                               **VALID_ENTRIES["webhook"])

    content = admin_client.get(change_url(connector)).content.decode()

    assert CLIENT_SECRET not in content
    assert connector.signing_secret not in content
    assert secret_status_html("client_secret", "set · ends in …4242") in content
    signing_status = f"set · ends in …{connector.signing_secret[-4:]}"
    assert secret_status_html("signing_secret", signing_status) in content
    assert secret_status_html("password", "not set") in content


def test_a_view_only_user_sees_each_secret_only_by_its_status(client, django_user_model):
    from django.contrib.auth.models import Permission

    connector = make_connector(name="Hook", type="webhook", login="", password="",
                               **VALID_ENTRIES["webhook"])
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_connector"))
    client.force_login(viewer)

    content = client.get(change_url(connector)).content.decode()

    assert CLIENT_SECRET not in content
    assert connector.signing_secret not in content
    assert "set · ends in …4242" in content
    assert f"set · ends in …{connector.signing_secret[-4:]}" in content
    assert 'name="client_secret"' not in content  # a read-only page: no inputs


def test_it_keeps_the_secret_when_the_input_is_blank(admin_client):
    connector = make_connector()

    response = admin_client.post(change_url(connector), data_of(connector, login="svc-other"))

    assert response.status_code == 302
    connector.refresh_from_db()
    assert (connector.login, connector.password) == ("svc-other", LONG_PASSWORD)


def test_it_replaces_the_secret_when_a_new_value_is_posted(admin_client):
    connector = make_connector()

    admin_client.post(change_url(connector), data_of(connector, password="a-brand-new-secret"))

    connector.refresh_from_db()
    assert connector.password == "a-brand-new-secret"


def test_it_removes_the_secret_when_clear_is_ticked(admin_client):
    connector = make_connector(name="Hook", type="webhook", **VALID_ENTRIES["webhook"],
                               password=LONG_PASSWORD)

    response = admin_client.post(change_url(connector), data_of(connector, password__clear="1"))

    assert response.status_code == 302
    connector.refresh_from_db()
    assert connector.password == ""
    assert connector.client_secret == CLIENT_SECRET


def test_it_refuses_clearing_a_secret_the_auth_type_needs(admin_client):
    connector = make_connector()

    response = admin_client.post(change_url(connector), data_of(connector, password__clear="1"))

    assert response.context["adminform"].form.errors["password"] == [
        "Basic authentication needs a password."
    ]
    connector.refresh_from_db()
    assert connector.password == LONG_PASSWORD


def test_the_database_column_holds_no_plaintext_secret(admin_client):
    admin_client.post(ADD, form_data(name="NAV", **VALID_ENTRIES["nav"]))
    admin_client.post(ADD, form_data(name="Hook", type="webhook", **VALID_ENTRIES["webhook"]))

    passwords = raw_column("password")
    client_secrets = raw_column("client_secret")
    signing_secrets = raw_column("signing_secret")

    assert LONG_PASSWORD not in " ".join(passwords)
    assert CLIENT_SECRET not in " ".join(client_secrets)
    assert "whsec_" not in " ".join(signing_secrets)
    assert all(value.startswith("gAAAA") for value in passwords + client_secrets if value)


# --- History (LogEntry) ----------------------------------------------------------------------


def test_the_history_of_an_add_and_a_change_holds_no_secret(admin_client):
    admin_client.post(ADD, form_data(name="Hook", type="webhook", **VALID_ENTRIES["webhook"]))
    connector = Connector.objects.get(name="Hook")
    admin_client.post(
        change_url(connector),
        data_of(connector, client_secret="the-rotated-client-secret", password=LONG_PASSWORD,
                signing_secret="whsec_cm90YXRlZC1zaWduaW5nLXNlY3JldA=="),
    )
    connector.refresh_from_db()
    assert connector.client_secret == "the-rotated-client-secret"

    entries = LogEntry.objects.filter(object_id=str(connector.pk)).order_by("action_time")
    assert [entry.action_flag for entry in entries] == [1, 2]  # ADDITION, CHANGE
    assert "Client secret" in entries[1].get_change_message()
    secrets = [CLIENT_SECRET, "the-rotated-client-secret", LONG_PASSWORD,
               "whsec_cm90YXRlZC1zaWduaW5nLXNlY3JldA==", "cm90YXRlZC1zaWduaW5n"]
    for entry in entries:
        logged = f"{entry.change_message} {entry.object_repr} {entry.get_change_message()}"
        for secret in secrets:
            assert secret not in logged


# --- Bulk actions ----------------------------------------------------------------------------


def test_the_enable_action_enables_the_selected_connectors_and_says_how_many(admin_client):
    off_1 = make_connector(name="A", enabled=False)
    off_2 = make_connector(name="B", enabled=False)
    on = make_connector(name="C")
    untouched = make_connector(name="D", enabled=False)

    response = admin_client.post(
        CHANGELIST,
        {"action": "enable_connectors", "_selected_action": [off_1.pk, off_2.pk, on.pk]},
        follow=True,
    )

    assert messages_of(response) == ["Enabled 2 connector(s)."]
    assert set(Connector.objects.filter(enabled=True).values_list("name", flat=True)) == {
        "A", "B", "C"
    }
    untouched.refresh_from_db()
    assert untouched.enabled is False


def test_the_disable_action_disables_the_selected_connectors_and_says_how_many(admin_client):
    first = make_connector(name="A")
    second = make_connector(name="B")
    make_connector(name="C")

    response = admin_client.post(
        CHANGELIST,
        {"action": "disable_connectors", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )

    assert messages_of(response) == ["Disabled 2 connector(s)."]
    assert list(Connector.objects.filter(enabled=True).values_list("name", flat=True)) == ["C"]


# --- Status column ---------------------------------------------------------------------------


def set_test_result(connector: Connector, *, ok: bool | None, message: str = "") -> None:
    connector.last_test_ok = ok
    connector.last_tested_at = timezone.now() - timedelta(minutes=5) if ok is not None else None
    connector.last_test_message = message
    connector.save()


def status_cell(content: str, name: str) -> str:
    row = next(row for row in content.split("<tr") if f">{name}</a>" in row)
    match = re.search(r'<td class="field-status">(.*?)</td>', row, re.S)
    assert match, row
    return match.group(1)


def test_the_status_column_shows_each_state(admin_client):
    make_connector(name="Fresh")
    set_test_result(make_connector(name="Off", enabled=False), ok=True)
    set_test_result(make_connector(name="Good"), ok=True, message="All steps passed.")
    set_test_result(
        make_connector(name="Bad"), ok=False, message="Authenticate: 401 Unauthorized."
    )

    content = admin_client.get(CHANGELIST).content.decode()

    assert ">not tested yet<" in status_cell(content, "Fresh")
    assert ">disabled<" in status_cell(content, "Off")
    assert ">connection OK<" in status_cell(content, "Good")
    assert "5\xa0minutes ago" in status_cell(content, "Good")
    bad = status_cell(content, "Bad")
    assert ">failing<" in bad
    assert 'title="Authenticate: 401 Unauthorized."' in bad


# --- API clients -----------------------------------------------------------------------------


def shown_key(response: Any) -> str:
    match = re.search(r'id="api-key" readonly value="([^"]+)"', response.content.decode())
    assert match, response.content.decode()
    return match.group(1)


def client_change_url(client: ApiClient) -> str:
    return reverse("admin:connectors_apiclient_change", args=[client.pk])


def test_the_api_client_add_page_renders(admin_client):
    response = admin_client.get(CLIENT_ADD)

    assert response.status_code == 200
    assert 'name="source_apps"' in response.content.decode()


def test_adding_an_api_client_shows_its_working_key_once(admin_client):
    response = admin_client.post(
        CLIENT_ADD, {"name": "BC prod", "source_apps": "BCPROD, BCTEST", "is_active": "on"}
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = shown_key(response)
    client = ApiClient.objects.get(name="BC prod")
    assert services.api_client_for_key(key) == client
    assert client.source_apps == ["BCPROD", "BCTEST"]
    assert client.key_hash != key and key not in client.key_hash
    assert key not in admin_client.get(CLIENTS).content.decode()
    assert key not in admin_client.get(client_change_url(client)).content.decode()


def test_adding_an_api_client_without_source_apps_says_what_is_missing(admin_client):
    response = admin_client.post(CLIENT_ADD, {"name": "BC prod", "source_apps": " , "})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["source_apps"] == [
        "Give at least one allowed source app."
    ]
    assert not ApiClient.objects.exists()


def test_the_api_client_change_page_renders_without_the_key(admin_client):
    client, key = services.api_client_create(name="BC prod", source_apps=["BCPROD"])

    response = admin_client.get(client_change_url(client))

    assert response.status_code == 200
    content = response.content.decode()
    assert key not in content
    assert f"{client.key_prefix}…" in content


def test_issuing_a_new_key_shows_it_and_the_old_key_stops_working(admin_client):
    client, old_key = services.api_client_create(name="BC prod", source_apps=["BCPROD"])

    response = admin_client.post(
        CLIENTS, {"action": "issue_new_key", "_selected_action": [client.pk]}
    )

    assert response.status_code == 200
    new_key = shown_key(response)
    assert new_key != old_key
    assert "the previous key no longer works" in response.content.decode()
    assert services.api_client_for_key(new_key) == client
    assert services.api_client_for_key(old_key) is None
    assert new_key not in admin_client.get(CLIENTS).content.decode()


def test_issuing_a_new_key_for_two_clients_is_refused(admin_client):
    first, first_key = services.api_client_create(name="A", source_apps=["BCPROD"])
    second, second_key = services.api_client_create(name="B", source_apps=["BCTEST"])

    response = admin_client.post(
        CLIENTS, {"action": "issue_new_key", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )

    assert messages_of(response) == ["Select exactly one API client to issue a new key for."]
    assert 'id="api-key"' not in response.content.decode()
    assert services.api_client_for_key(first_key) == first
    assert services.api_client_for_key(second_key) == second


@pytest.mark.django_db
def test_the_add_form_says_a_blank_signing_secret_is_generated(admin_client):
    response = admin_client.get("/admin/connectors/connector/add/")
    html = response.content.decode()
    assert 'name="signing_secret"' in html
    assert 'placeholder="leave blank to generate one"' in html
    assert 'placeholder="enter a value"' in html  # the other secrets


@pytest.mark.django_db
def test_the_admin_index_links_to_the_dispatch_log_and_health_pages(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert 'href="/dispatches/"' in html and 'href="/dispatches/health/"' in html
