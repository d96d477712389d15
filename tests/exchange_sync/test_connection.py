"""Exchange "test connection" (exchange_sync/connection.py) and `manage.py test_exchange`,
against the fake Microsoft Graph and Entra ID (tests/fakes/graph): every step, each failure an
administrator can hit with the hint they see, and no secret in anything stored or shown."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.core.management import call_command

from exchange_sync.connection import exchange_test_connection, run_exchange_test
from exchange_sync.graph.errors import CONSENT_HINT
from exchange_sync.models import ExchangeSettings
from tests.exchange_sync.conftest import CLIENT_ID, CLIENT_SECRET, TENANT
from tests.exchange_sync.factories import make_resource

pytestmark = pytest.mark.django_db

MAILBOX = "anna@contoso.test"
STEP_NAMES = ["Configuration", "Authenticate (token)", "Read mailbox", "Notifications"]


def configure(**values: Any) -> ExchangeSettings:
    settings = ExchangeSettings.load()
    fields: dict[str, Any] = {"enabled": True, "tenant_id": TENANT, "client_id": CLIENT_ID,
                              "client_secret": CLIENT_SECRET, "test_mailbox": MAILBOX,
                              "timeout_s": 10}
    fields.update(values)
    for name, value in fields.items():
        setattr(settings, name, value)
    settings.save()
    return settings


def stored_text(settings: ExchangeSettings) -> str:
    settings.refresh_from_db()
    return settings.last_test_message + json.dumps(settings.last_test_result)


@pytest.fixture
def public_https(settings):
    settings.PUBLIC_BASE_URL = "https://dimeconnect.contoso.test"


def test_a_working_connection_passes_every_step_in_time(graph_state, public_https):
    graph_state.add_user(MAILBOX, "Anna Berg")
    graph_state.outlook_create(MAILBOX, subject="Dentist")
    settings = configure()

    result = exchange_test_connection(exchange_settings=settings)

    assert result.ok, result.message
    assert [step.name for step in result.steps] == STEP_NAMES
    assert all(step.ok and step.duration_ms >= 0 for step in result.steps)
    configuration, token, mailbox, notifications = result.steps
    assert configuration.detail == (f"Tenant {TENANT}, client {CLIENT_ID}, client secret set; "
                                    "Exchange sync is enabled.")
    assert token.detail == f"Token received from Entra ID for tenant {TENANT}."
    assert mailbox.detail.startswith(f"Read the calendar of {MAILBOX} (Anna Berg): ")
    assert "(30 days back, 180 days ahead)" in mailbox.detail
    assert notifications.detail == ("Change notifications go to https://dimeconnect.contoso.test"
                                    "/api/v1/exchange/notifications/ (inbound sync needs Graph "
                                    "to reach it).")
    assert result.message == "The Exchange connection works: " + mailbox.detail
    settings.refresh_from_db()
    assert settings.last_test_ok is True and settings.last_tested_at == result.tested_at
    assert [s["name"] for s in settings.last_test_result["steps"]] == STEP_NAMES


def test_the_mailbox_read_is_one_user_and_one_calendar_view_page(graph_state, public_https):
    user_id = graph_state.add_user(MAILBOX)
    graph_state.reset_counters()

    run_exchange_test(configure())

    urls = [call.url for call in graph_state.calls]
    assert len(urls) == 2
    assert f"/users/{MAILBOX}" in urls[0]
    assert f"/users/{user_id}/calendarView" in urls[1] and "%24top=1" not in urls[1]
    assert "$top=1" in urls[1] and "startDateTime=" in urls[1]
    assert graph_state.prefer_missing == 0


def test_without_a_test_mailbox_it_reads_the_first_synced_resource(graph_state, public_https):
    graph_state.add_user("bob@contoso.test", "Bob Stone")
    make_resource("R1", email="zed@contoso.test")  # sync off: not this one
    make_resource("R2", email="bob@contoso.test", sync_enabled=True)

    result = run_exchange_test(configure(test_mailbox=""))

    assert result.ok
    assert result.steps[2].detail.startswith("Read the calendar of bob@contoso.test (Bob Stone)")


def test_with_no_mailbox_at_all_the_read_step_says_what_to_set(graph_state):
    result = run_exchange_test(configure(test_mailbox=""))

    assert not result.ok
    assert result.message == ("Read mailbox failed: No mailbox to read: there is no test "
                              "mailbox and no resource with sync on.")
    assert result.hint == ("Set “test mailbox” (Exchange settings → Connection) or turn sync "
                           "on for a resource with a mailbox email.")


def test_a_wrong_secret_fails_authentication_with_the_aadsts_hint(graph_state):
    graph_state.add_user(MAILBOX)
    wrong = "Wr0ng~secret.value-0000000000000000"
    settings = configure(client_secret=wrong)

    result = exchange_test_connection(exchange_settings=settings)

    assert [step.ok for step in result.steps] == [True, False]
    assert result.message.startswith("Authenticate (token) failed:")
    assert "AADSTS7000215" in result.message
    assert result.hint == ("The client secret is wrong: copy the secret's Value (not its ID) "
                           "from the app registration's Certificates & secrets.")
    assert wrong not in stored_text(settings)
    assert settings.last_test_ok is False


def test_an_unknown_mailbox_fails_with_the_mailbox_not_found_hint(graph_state):
    result = run_exchange_test(configure(test_mailbox="nobody@contoso.test"))

    assert [step.ok for step in result.steps] == [True, True, False]
    assert "HTTP 404" in result.message and "ErrorInvalidUser" in result.message
    assert result.hint == ("Mailbox not found (nobody@contoso.test): check the resource's "
                           "mailbox email; the user needs an Exchange Online mailbox.")


def test_missing_consent_fails_the_mailbox_read_with_the_consent_hint(graph_state):
    graph_state.add_user(MAILBOX)
    graph_state.consent = False

    result = run_exchange_test(configure())

    assert result.steps[2].name == "Read mailbox" and not result.steps[2].ok
    assert "HTTP 403" in result.message
    assert result.hint == CONSENT_HINT


def test_an_access_policy_fails_the_mailbox_read_naming_the_mailbox(graph_state):
    graph_state.add_user(MAILBOX)
    graph_state.blocked_mailboxes = {MAILBOX}

    result = run_exchange_test(configure())

    assert not result.ok and result.steps[2].name == "Read mailbox"
    assert result.hint.startswith(f"Exchange Online blocks the application from the mailbox "
                                  f"{MAILBOX}: an application access policy")
    assert "Test-ApplicationAccessPolicy" in result.hint


def test_missing_configuration_names_what_is_missing_without_calling_out(settings):
    settings.GRAPH_BASE_URL = "https://127.0.0.1:9/v1.0"  # never reached
    stored = configure(enabled=False, tenant_id="", client_secret="")

    result = exchange_test_connection(exchange_settings=stored)

    assert [step.name for step in result.steps] == ["Configuration"]
    assert result.message == "Configuration failed: Missing: tenant ID, client secret."
    assert result.hint.startswith("Fill in the tenant ID, client ID and client secret")
    stored.refresh_from_db()
    assert stored.last_test_message == f"{result.message} {result.hint}"


def test_a_disabled_sync_is_noted_but_tested(graph_state, public_https):
    graph_state.add_user(MAILBOX)

    result = run_exchange_test(configure(enabled=False))

    assert result.ok
    assert result.steps[0].detail.endswith("Exchange sync is not enabled: nothing is read or "
                                           "written until “enabled” is ticked.")


@pytest.mark.parametrize(
    ("base", "warning"),
    [
        ("", "Warning: PUBLIC_BASE_URL is not set, so Microsoft Graph cannot send change "
             "notifications: inbound sync (Outlook → planner) then only runs on the safety "
             "rounds."),
        ("http://dimeconnect.local:8000", "Warning: PUBLIC_BASE_URL is plain http "
         "(http://dimeconnect.local:8000/api/v1/exchange/notifications/); Microsoft Graph only "
         "calls https endpoints, so inbound sync (Outlook → planner) gets no change "
         "notifications and only runs on the safety rounds."),
    ],
)
def test_notifications_warn_but_do_not_fail_without_an_https_address(graph_state, settings,
                                                                     base, warning):
    settings.PUBLIC_BASE_URL = base
    graph_state.add_user(MAILBOX)

    result = run_exchange_test(configure())

    assert result.ok
    assert result.steps[3].ok and result.steps[3].detail == warning
    assert "https" in result.steps[3].hint and result.hint == result.steps[3].hint


def test_the_test_stays_within_the_timeout(graph_state):
    graph_state.add_user(MAILBOX)
    graph_state.latency_s = 3.0  # every Graph call; the token endpoint answers at once

    started = time.monotonic()
    result = run_exchange_test(configure(timeout_s=1))
    elapsed = time.monotonic() - started

    assert not result.ok
    assert result.steps[-1].name == "Read mailbox"
    assert elapsed < 2.9


def test_no_secret_or_token_reaches_the_stored_result(graph_state, public_https):
    graph_state.add_user(MAILBOX)
    graph_state.consent = False  # a failing call: the error path is where text leaks
    settings = configure()

    exchange_test_connection(exchange_settings=settings)
    text = stored_text(settings)

    assert graph_state.seen_tokens
    assert CLIENT_SECRET not in text
    assert not any(token in text for token in graph_state.seen_tokens)
    assert "Bearer" not in text


# --- manage.py test_exchange ------------------------------------------------------------------


def test_the_command_prints_the_steps_and_exits_0(graph_state, public_https, capsys):
    graph_state.add_user(MAILBOX, "Anna Berg")
    configure()

    call_command("test_exchange")
    out = capsys.readouterr().out

    for name in STEP_NAMES:
        assert f"ok   {name} (" in out
    assert "The Exchange connection works: Read the calendar of anna@contoso.test" in out
    assert ExchangeSettings.load().last_test_ok is True


def test_the_command_prints_json_and_exits_1_when_failing(graph_state, capsys):
    configure(test_mailbox="nobody@contoso.test")

    with pytest.raises(SystemExit) as exit_:
        call_command("test_exchange", "--json")
    printed = json.loads(capsys.readouterr().out)

    assert exit_.value.code == 1
    assert printed["ok"] is False
    assert [step["name"] for step in printed["steps"]] == STEP_NAMES[:3]
    assert printed["hint"].startswith("Mailbox not found (nobody@contoso.test)")


def test_the_command_shows_the_fix_of_a_failing_step(settings, capsys):
    configure(tenant_id="", client_id="", client_secret="")

    with pytest.raises(SystemExit):
        call_command("test_exchange")
    out = capsys.readouterr().out

    assert "FAIL Configuration (" in out and "Missing: tenant ID, client ID, client secret." in out
    assert "     Fix: Fill in the tenant ID" in out
