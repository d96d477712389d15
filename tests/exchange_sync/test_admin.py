"""Exchange sync admin (Django test client): every changelist, form and action; the settings
singleton and its write-only secret; resources' bulk actions, rule validation and the rules
preview (saved rules on the page, unsaved rules through the no-JS "Preview" POST)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from exchange_sync.models import (
    EventLink,
    ExchangeSettings,
    MailboxState,
    PendingSync,
    Resource,
    SyncLogEntry,
)
from tests.exchange_sync.factories import (
    VIEW_PERMISSIONS,
    add_rule,
    make_appointment,
    make_resource,
    staff_user,
)

pytestmark = pytest.mark.django_db

SETTINGS_LIST = reverse("admin:exchange_sync_exchangesettings_changelist")
SETTINGS_ADD = reverse("admin:exchange_sync_exchangesettings_add")
RESOURCES = reverse("admin:exchange_sync_resource_changelist")
RESOURCE_ADD = reverse("admin:exchange_sync_resource_add")
PREVIEW = reverse("admin:exchange_sync_resource_preview")
SECRET = "Xy7~entra.client-secret-value-9aB3"


def settings_url(name: str = "change") -> str:
    return reverse(f"admin:exchange_sync_exchangesettings_{name}", args=[1])


def resource_url(resource: Resource) -> str:
    return reverse("admin:exchange_sync_resource_change", args=[resource.pk])


def heading(group: str, html: str) -> bool:
    """Whether the page has a fieldset headed `group`."""
    return re.search(rf"<h2[^>]*>{re.escape(group)}</h2>", html) is not None


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def viewer_client() -> Client:
    client = Client()
    client.force_login(staff_user(*VIEW_PERMISSIONS))
    return client


def settings_form(**values: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "enabled": "on", "tenant_id": "contoso.onmicrosoft.com",
        "client_id": "0b9f6d2e-3a4c-4e8b-9f1a-7c5d3e2b1a09", "client_secret": "",
        "test_mailbox": "", "timeout_s": "15", "window_past_days": "30",
        "window_future_days": "180", "shared_show_as": ["busy", "oof"],
        "shared_sensitivities": ["normal", "private"], "debounce_s": "5",
        "safety_round_minutes": "15", "mass_delete_percent": "50", "mass_delete_minimum": "5",
    }
    data.update(values)
    return data


def resource_form(resource: Resource | None = None, rules: list[dict[str, str]] | None = None,
                  initial: int = 0, **values: Any) -> dict[str, Any]:
    """The resource form as posted, with its inline rule rows (prefix "rules")."""
    data: dict[str, Any] = {
        "name": "Ann", "email": "ann@contoso.example", "sync_enabled": "on",
        "shared_show_as": [], "shared_sensitivities": [], "rule_match": "all",
        "rules-TOTAL_FORMS": str(len(rules or [])), "rules-INITIAL_FORMS": str(initial),
        "rules-MIN_NUM_FORMS": "0", "rules-MAX_NUM_FORMS": "1000",
    }
    if resource is None:
        data.update(source_app="BCPROD", resource_no="R1")
    for index, row in enumerate(rules or []):
        for name, value in row.items():
            data[f"rules-{index}-{name}"] = value
    data.update(values)
    return data


# --- Settings: one row -----------------------------------------------------------------------


def test_the_settings_changelist_goes_to_the_one_row_creating_it(admin_client):
    first = admin_client.get(SETTINGS_LIST)
    second = admin_client.get(SETTINGS_LIST)

    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == settings_url()
    assert list(ExchangeSettings.objects.values_list("pk", flat=True)) == [1]


def test_the_settings_form_renders_its_groups_without_add_or_delete(admin_client):
    ExchangeSettings.load()
    page = admin_client.get(settings_url())
    html = page.content.decode()

    assert page.status_code == 200
    for group in ("Connection", "Sync window", "Privacy (global default)",
                  "Inbound timing and safety", "Status"):
        assert heading(group, html)
    assert 'name="shared_show_as"' in html and 'type="checkbox"' in html
    assert "not tested yet" in html
    assert 'id="test-connection"' in html
    assert "deletelink" not in html
    assert admin_client.get(SETTINGS_ADD).status_code == 403
    assert admin_client.get(settings_url("delete")).status_code == 403


def test_there_is_no_add_form_the_list_creates_the_one_row(admin_client):
    assert admin_client.get(SETTINGS_ADD).status_code == 403
    assert not ExchangeSettings.objects.exists()

    assert admin_client.get(SETTINGS_LIST).url == settings_url()
    response = admin_client.post(settings_url(), settings_form(client_secret=SECRET))

    assert response.status_code == 302
    settings = ExchangeSettings.objects.get()
    assert settings.pk == 1 and settings.client_secret == SECRET
    assert settings.shared_show_as == ["busy", "oof"]


def test_the_settings_save_and_validate_their_fields(admin_client):
    ExchangeSettings.load()
    refused = admin_client.post(settings_url(), settings_form(timeout_s="99"))
    saved = admin_client.post(settings_url(), settings_form(window_past_days="10"))

    assert refused.status_code == 200
    assert "timeout_s" in refused.context["adminform"].form.errors
    assert saved.status_code == 302
    assert ExchangeSettings.load().window_past_days == 10


# --- Settings: the write-only secret ---------------------------------------------------------


def test_the_client_secret_is_write_only(admin_client):
    ExchangeSettings.load()
    admin_client.post(settings_url(), settings_form(client_secret=SECRET))
    page = admin_client.get(settings_url()).content.decode()

    assert ExchangeSettings.load().client_secret == SECRET
    assert SECRET not in page
    assert "set · ends in …" + SECRET[-4:] in page
    assert 'name="client_secret__clear"' in page


def test_a_blank_secret_keeps_it_and_clear_clears_it(admin_client):
    ExchangeSettings.objects.create(pk=1, client_secret=SECRET)

    admin_client.post(settings_url(), settings_form(client_secret=""))
    kept = ExchangeSettings.load().client_secret
    refused = admin_client.post(settings_url(), settings_form(timeout_s="0"))
    admin_client.post(settings_url(), settings_form(client_secret__clear="1"))

    assert kept == SECRET
    assert SECRET not in refused.content.decode()
    assert ExchangeSettings.load().client_secret == ""


def test_the_admin_history_never_holds_the_secret(admin_client):
    ExchangeSettings.load()
    admin_client.post(settings_url(), settings_form(client_secret=SECRET))
    admin_client.post(settings_url(), settings_form(client_secret="another-secret-5678"))
    history = admin_client.get(settings_url("history")).content.decode()

    messages = [entry.get_change_message() for entry in LogEntry.objects.all()]
    assert messages and all("Client secret" in message for message in messages)
    assert not any(SECRET in m or "another-secret" in m for m in messages)
    assert SECRET not in history and "another-secret" not in history


# --- Settings: test connection ---------------------------------------------------------------


def test_test_connection_runs_stores_and_shows_the_steps(admin_client, settings):
    settings.PUBLIC_BASE_URL = ""
    ExchangeSettings.objects.create(pk=1, client_id="app", client_secret=SECRET)

    response = admin_client.post(settings_url("test"))
    html = response.content.decode()
    stored = ExchangeSettings.load()

    assert response.status_code == 200
    assert "Configuration failed: Missing: tenant ID." in html
    assert "How to fix:" in html and SECRET not in html
    assert stored.last_test_ok is False
    assert stored.last_test_result["steps"][0]["name"] == "Configuration"
    page = admin_client.get(settings_url()).content.decode()
    assert "failing" in page and "Missing: tenant ID." in page and 'class="dc-steps"' in page


def test_test_connection_is_a_post_for_those_who_may_change(admin_client, viewer_client):
    ExchangeSettings.load()

    assert admin_client.get(settings_url("test")).status_code == 405
    assert viewer_client.post(settings_url("test")).status_code == 403
    assert 'id="test-connection"' not in viewer_client.get(settings_url()).content.decode()


def test_a_view_only_user_sees_the_settings_but_cannot_change_them(viewer_client):
    ExchangeSettings.objects.create(pk=1, client_secret=SECRET)

    page = viewer_client.get(settings_url())
    refused = viewer_client.post(settings_url(), settings_form(client_secret="new-secret-1234"))

    assert viewer_client.get(SETTINGS_LIST)["Location"] == settings_url()
    assert page.status_code == 200 and SECRET not in page.content.decode()
    assert "set · ends in …" + SECRET[-4:] in page.content.decode()
    assert refused.status_code == 403
    assert ExchangeSettings.load().client_secret == SECRET


# --- Resources: changelist and actions -------------------------------------------------------


def test_the_resource_changelist_shows_counts_filters_and_search(admin_client):
    ann = make_resource("R1", name="Ann", sync_enabled=True)
    make_resource("R2", name="Bob")
    make_resource("R1", source_app="NAV", name="Cleo")
    add_rule(ann, "category", "equals", "Install")
    link_at = timezone.now() - timedelta(hours=1)
    for _ in range(2):
        EventLink.objects.create(appointment=make_appointment("R1"), resource=ann,
                                 event_id="AAMk", synced_at=link_at)

    page = admin_client.get(RESOURCES)
    html = page.content.decode()
    filtered = admin_client.get(RESOURCES, {"source_app": "BCPROD", "sync_enabled__exact": "1"})
    searched = admin_client.get(RESOURCES, {"q": "cleo"})

    assert page.context["cl"].result_count == 3
    assert "category equals Install" in html and "none (every appointment)" in html
    row = next(r for r in page.context["cl"].result_list if r.pk == ann.pk)
    assert row.linked_count == 2 and row.last_link_sync == link_at
    assert [r.name for r in filtered.context["cl"].result_list] == ["Ann"]
    assert [r.name for r in searched.context["cl"].result_list] == ["Cleo"]


def test_the_resource_changelist_does_not_query_per_row(admin_client,
                                                        django_assert_max_num_queries):
    def add_rows(start: int) -> None:
        for number in range(start, start + 5):
            resource = make_resource(f"R{number}")
            add_rule(resource, "category", "equals", "Install")
            add_rule(resource, "locked", "equals", "false")
            MailboxState.objects.create(resource=resource, last_round_at=timezone.now())
            EventLink.objects.create(appointment=make_appointment(f"R{number}"),
                                     resource=resource)

    add_rows(0)
    with django_assert_max_num_queries(50) as few:
        admin_client.get(RESOURCES)
    add_rows(100)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(RESOURCES)
    assert response.context["cl"].result_count == 10


def test_bulk_enable_and_disable_sync_end_with_one_summary(admin_client):
    on = make_resource("R1", sync_enabled=True)
    off = make_resource("R2")
    blank = make_resource("R3", email="")
    every = [str(r.pk) for r in (on, off, blank)]

    enabled = admin_client.post(RESOURCES, {"action": "enable_sync",
                                            "_selected_action": every}, follow=True)
    assert messages_of(enabled) == [
        "Turned sync on for 2 resource(s); 1 already had it on. 1 of them have no mailbox "
        "email: nothing syncs until one is set."
    ]
    assert set(Resource.objects.values_list("sync_enabled", flat=True)) == {True}

    disabled = admin_client.post(RESOURCES, {"action": "disable_sync",
                                             "_selected_action": [str(off.pk)]}, follow=True)
    assert messages_of(disabled) == ["Turned sync off for 1 resource(s)."]
    assert Resource.objects.get(pk=off.pk).sync_enabled is False


def test_a_view_only_user_cannot_run_the_bulk_actions(viewer_client):
    resource = make_resource("R1")

    page = viewer_client.get(RESOURCES)
    viewer_client.post(RESOURCES, {"action": "enable_sync",
                                   "_selected_action": [str(resource.pk)]})

    assert page.status_code == 200
    assert "enable_sync" not in page.content.decode()
    assert Resource.objects.get(pk=resource.pk).sync_enabled is False


# --- Resources: forms and rules --------------------------------------------------------------


def test_the_resource_add_form_renders_and_saves_with_rules(admin_client):
    form = admin_client.get(RESOURCE_ADD)
    html = form.content.decode()

    assert form.status_code == 200
    assert 'name="rules-0-field"' in html and 'list="id_rules-0-field-fields"' in html
    assert '<option value="planning_qty">' in html and "field_values." in html
    response = admin_client.post(RESOURCE_ADD, resource_form(rules=[
        {"position": "1", "field": "category", "operator": "in", "value": "Install, Repair"},
        {"position": "2", "field": "field_values.Region", "operator": "equals", "value": "N"},
    ]))

    assert response.status_code == 302
    resource = Resource.objects.get()
    assert (resource.source_app, resource.resource_no, resource.sync_enabled) == (
        "BCPROD", "R1", True)
    assert [str(rule) for rule in resource.rules.all()] == [
        "category is one of (comma-separated) Install, Repair", "field_values.Region equals N"]


def test_the_resource_change_form_shows_its_groups_and_the_global_privacy(admin_client):
    ExchangeSettings.objects.create(pk=1, shared_show_as=["busy"], shared_sensitivities=["normal"])
    resource = make_resource("R1")

    page = admin_client.get(resource_url(resource))
    html = page.content.decode()

    assert page.status_code == 200
    for group in ("Resource", "Privacy (what is shared with the planner)", "Outbound rules",
                  "Status"):
        assert heading(group, html)
    assert "Show-as: Busy. Sensitivities: Normal." in html and "(in use)" in html
    assert 'name="source_app"' not in html  # fixed once created


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"field": "subject", "operator": "gt", "value": "b"}, "operator",
         "“is greater than” does not apply to the text field subject."),
        ({"field": "start", "operator": "gt", "value": "next week"}, "value",
         "must be a date and time in ISO 8601"),
        ({"field": "colour", "operator": "equals", "value": "red"}, "field",
         "Unknown field &#x27;colour&#x27;."),
        ({"field": "subject", "operator": "is_empty", "value": "x"}, "value",
         "“is empty” takes no value: leave the value blank."),
    ],
)
def test_a_rule_error_shows_on_its_own_cell(admin_client, row, field, message):
    resource = make_resource("R1")

    response = admin_client.post(resource_url(resource),
                                 resource_form(resource, rules=[{"position": "0", **row}]))

    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert list(formset.forms[0].errors) == [field]
    html = response.content.decode()
    cell = html[html.index(f'class="field-{field}"'):]
    assert message in cell[: cell.index("</td>")]
    assert not resource.rules.exists()


def test_an_existing_rule_can_be_changed_and_deleted(admin_client):
    resource = make_resource("R1")
    first = add_rule(resource, "category", "equals", "Install")
    second = add_rule(resource, "locked", "equals", "true", position=1)

    response = admin_client.post(resource_url(resource), resource_form(resource, initial=2, rules=[
        {"id": str(first.pk), "resource": str(resource.pk), "position": "0",
         "field": "category", "operator": "equals", "value": "Repair"},
        {"id": str(second.pk), "resource": str(resource.pk), "position": "1",
         "field": "locked", "operator": "equals", "value": "true", "DELETE": "on"},
    ]))

    assert response.status_code == 302
    assert [str(rule) for rule in resource.rules.all()] == ["category equals Repair"]


# --- Resources: the rules preview ------------------------------------------------------------


@pytest.fixture
def previewed() -> tuple[Resource, Any, Any, Any]:
    resource = make_resource("R1", rule_match="all")
    add_rule(resource, "category", "equals", "Install")
    install = make_appointment("R1", category="Install", appointment_no="A-INSTALL")
    repair = make_appointment("R1", "R2", category="Repair", appointment_no="A-REPAIR",
                              age_minutes=5)
    make_appointment("R2", category="Install", appointment_no="A-OTHER")  # not R1's
    make_appointment("R1", source_app="NAV", appointment_no="A-NAV")  # another source app
    return resource, install, repair, None


def rows_of(html: str) -> dict[str, str]:
    """{appointment no: "yes"/"no"} of a preview table."""
    rows = {}
    for chunk in html.split('<tr class="dc-rule-')[1:]:
        verdict = "yes" if chunk.startswith("pass") else "no"
        number = chunk.split("<td>")[1].split("</td>")[0].split()[-1]
        rows[number] = verdict
    return rows


def test_the_change_form_previews_the_saved_rules(admin_client, previewed):
    resource, *_ = previewed

    html = admin_client.get(resource_url(resource)).content.decode()

    assert "Saved rules:" in html
    assert rows_of(html) == {"A-INSTALL": "yes", "A-REPAIR": "no"}
    assert "category equals Install: no (&#x27;Repair&#x27;)" in html
    assert 'formaction="' + PREVIEW + '"' in html and f'value="{resource.pk}"' in html


def test_the_preview_button_evaluates_the_unsaved_rules_without_js(admin_client, previewed):
    resource, *_ = previewed
    rules = [
        {"id": str(resource.rules.get().pk), "position": "0", "field": "category",
         "operator": "equals", "value": "Repair"},
        {"position": "1", "field": "resource_count", "operator": "gt", "value": "1"},
        {"position": "2", "field": "start", "operator": "gt", "value": "soon"},
    ]

    response = admin_client.post(PREVIEW, resource_form(
        resource, rules=rules, initial=1, rule_match="any", _preview=str(resource.pk)))
    html = response.content.decode()

    assert response.status_code == 200
    assert "<html" in html and "Nothing was saved." in html
    assert "Rules in the form (not saved):" in html and "2, any may pass" in html
    assert rows_of(html) == {"A-INSTALL": "no", "A-REPAIR": "yes"}
    assert "resource_count is greater than 1: yes (2)" in html
    assert "Rule 3 (start):" in html and "ISO 8601" in html
    assert [str(rule) for rule in resource.rules.all()] == ["category equals Install"]


def test_the_preview_of_a_new_resource_uses_the_posted_identity(admin_client, previewed):
    response = admin_client.post(PREVIEW, resource_form(rules=[
        {"position": "0", "field": "category", "operator": "not_equals", "value": "install"},
    ], _preview=""), HTTP_X_DC_FRAGMENT="1")
    html = response.content.decode()

    assert "<html" not in html  # the fragment resource_form.js shows under the button
    assert rows_of(html) == {"A-INSTALL": "no", "A-REPAIR": "yes"}


def test_the_preview_without_appointments_or_rules_says_so(admin_client):
    response = admin_client.post(PREVIEW, resource_form(resource_no="R9", _preview=""))
    html = response.content.decode()

    assert "none: every appointment goes to Outlook." in html
    assert "No appointments of BCPROD include resource R9 yet." in html


def test_a_view_only_user_sees_the_saved_preview_without_the_button(viewer_client, previewed):
    resource, *_ = previewed

    html = viewer_client.get(resource_url(resource)).content.decode()

    assert rows_of(html) == {"A-INSTALL": "yes", "A-REPAIR": "no"}
    assert "dc-rules-preview-button" not in html


def test_the_preview_is_a_post_for_those_who_may_edit(admin_client, viewer_client):
    assert admin_client.get(PREVIEW).status_code == 405
    assert viewer_client.post(PREVIEW, resource_form(_preview="")).status_code == 403


# --- Sync state, read-only -------------------------------------------------------------------


@pytest.fixture
def sync_state() -> dict[str, Any]:
    resource = make_resource("R1")
    appointment = make_appointment("R1", appointment_no="A-77")
    link = EventLink.objects.create(
        appointment=appointment, resource=resource, origin="planner",
        event_id="AAMkAGI2TGuLAAA=" + "x" * 40 + "END12345", change_key="ck1", generation=1,
        synced_at=timezone.now(),
    )
    pending = PendingSync.objects.create(appointment=appointment, next_attempt_at=timezone.now(),
                                         last_error="HTTP 503 from Graph")
    entry = SyncLogEntry.objects.create(
        direction="inbound", kind="conflict", resource=resource, appointment=appointment,
        event_id="AAMk-1", message="Both changed; Outlook was newer", hint="Nothing to do.",
        detail={"winner": "outlook"},
    )
    return {"link": link, "pending": pending, "entry": entry}


@pytest.mark.parametrize(
    ("model", "query", "found"),
    [
        ("eventlink", {}, 1),
        ("eventlink", {"origin__exact": "planner", "resource__source_app": "BCPROD"}, 1),
        ("eventlink", {"origin__exact": "outlook"}, 0),
        ("eventlink", {"q": "A-77"}, 1),
        ("eventlink", {"q": "END12345"}, 1),
        ("pendingsync", {}, 1),
        ("pendingsync", {"q": "A-77"}, 1),
        ("synclogentry", {}, 1),
        ("synclogentry", {"direction__exact": "inbound", "kind__exact": "conflict"}, 1),
        ("synclogentry", {"kind__exact": "error"}, 0),
        ("synclogentry", {"q": "Outlook was newer"}, 1),
        ("synclogentry", {"q": "AAMk-1"}, 1),
    ],
)
def test_the_sync_state_changelists_filter_and_search(admin_client, sync_state, model, query,
                                                       found):
    response = admin_client.get(reverse(f"admin:exchange_sync_{model}_changelist"), query)

    assert response.status_code == 200
    assert response.context["cl"].result_count == found


def test_event_ids_are_shortened_in_the_list(admin_client, sync_state):
    html = admin_client.get(reverse("admin:exchange_sync_eventlink_changelist")).content.decode()
    assert "AAMkAGI2…END12345" in html


@pytest.mark.parametrize(("model", "key"), [("eventlink", "link"), ("pendingsync", "pending"),
                                            ("synclogentry", "entry")])
def test_the_sync_state_is_view_only(admin_client, viewer_client, sync_state, model, key):
    obj = sync_state[key]
    change = reverse(f"admin:exchange_sync_{model}_change", args=[obj.pk])

    page = admin_client.get(change)
    viewed = viewer_client.get(change)

    assert page.status_code == viewed.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.get(reverse(f"admin:exchange_sync_{model}_add")).status_code == 403
    assert viewer_client.post(change, {}).status_code == 403


def test_only_superusers_may_delete_sync_log_entries(admin_client, viewer_client, sync_state):
    entry, link = sync_state["entry"], sync_state["link"]
    log_delete = reverse("admin:exchange_sync_synclogentry_delete", args=[entry.pk])

    assert viewer_client.post(log_delete, {"post": "yes"}).status_code == 403
    assert admin_client.get(
        reverse("admin:exchange_sync_eventlink_delete", args=[link.pk])).status_code == 403
    assert admin_client.post(log_delete, {"post": "yes"}).status_code == 302
    assert not SyncLogEntry.objects.exists()


def test_the_log_entry_page_shows_the_detail(admin_client, sync_state):
    entry = sync_state["entry"]
    html = admin_client.get(
        reverse("admin:exchange_sync_synclogentry_change", args=[entry.pk])).content.decode()
    assert "Both changed; Outlook was newer" in html and "&quot;winner&quot;" in html


def test_the_app_index_lists_every_model(admin_client):
    html = admin_client.get(reverse("admin:app_list", args=["exchange_sync"])).content.decode()
    for name in ("Exchange settings", "Resources", "Event links", "Pending Outlook updates",
                 "Sync log"):
        assert name in html
