"""exchange_sync.graph.GraphClient against the fake Graph (real HTTPS, real msal; no mocks)."""

from __future__ import annotations

import logging
import time

import pytest

from exchange_sync.graph import (
    GRAPH_SCOPE_DEFAULT,
    PREFER,
    BatchItem,
    GraphClient,
    GraphError,
    scope_for,
)
from tests.fakes.graph import GraphHandler, GraphState
from tests.fakes.server import FakeServer

from .conftest import CLIENT_ID, CLIENT_SECRET, TENANT

pytestmark = pytest.mark.django_db(databases=[])

MAILBOX = "anna.berg@contoso.test"
WINDOW = {"startDateTime": "2026-03-01T00:00:00Z", "endDateTime": "2026-04-01T00:00:00Z"}


def event_body(subject: str = "Planned", day: int = 2, **extra):
    return {
        "subject": subject,
        "start": {"dateTime": f"2026-03-{day:02d}T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"2026-03-{day:02d}T10:00:00", "timeZone": "UTC"},
        **extra,
    }


@pytest.fixture
def user_id(graph_state):
    return graph_state.add_user(MAILBOX, "Anna Berg")


def statuses(state: GraphState, *, batch_item: bool | None = None) -> list[int]:
    return [c.status for c in state.calls if batch_item is None or c.batch_item == batch_item]


# -- tokens -------------------------------------------------------------------------------
def test_it_fetches_one_token_for_many_calls(graph_client, graph_state, user_id):
    for _ in range(5):
        assert graph_client.user(MAILBOX)["id"] == user_id
    graph_client.get_all(f"/users/{user_id}/events")
    assert graph_state.token_requests == 1
    assert graph_state.issued[0]["scope"] == GRAPH_SCOPE_DEFAULT


def test_it_fetches_a_new_token_once_when_graph_refuses_the_cached_one(
    graph_client, graph_state, user_id
):
    graph_client.user(MAILBOX)
    graph_state.revoke_tokens()
    assert graph_client.user(MAILBOX)["id"] == user_id
    assert graph_state.token_requests == 2
    assert statuses(graph_state) == [200, 200]  # the 401 is answered before routing
    assert graph_state.request_count == 3


def test_a_token_refused_twice_raises_with_a_hint(graph_client, graph_state, user_id):
    graph_state.refuse_tokens = True
    with pytest.raises(GraphError) as caught:
        graph_client.user(MAILBOX)
    assert graph_state.token_requests == 2 and graph_state.request_count == 2
    assert caught.value.status_code == 401
    assert caught.value.code == "InvalidAuthenticationToken"
    assert "freshly fetched token" in caught.value.hint


def test_a_wrong_secret_is_a_permanent_graph_error_without_the_secret(graph_server, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng~Secret.value-9876543210zyxwvu"
    with GraphClient(tenant_id=TENANT, client_id=CLIENT_ID, client_secret=wrong) as client:
        with pytest.raises(GraphError) as caught:
            client.user(MAILBOX)
    error = caught.value
    assert error.permanent and error.error_class == "TokenError"
    assert "AADSTS7000215" in error.message
    assert "client secret" in error.hint.lower()
    for text in (str(error), error.hint, error.response_excerpt, caplog.text):
        assert wrong not in text


# -- Prefer, paging, links ----------------------------------------------------------------
def test_it_sends_prefer_on_every_call_and_every_batch_item(
    graph_client, graph_server, graph_state, user_id
):
    graph_client.user(MAILBOX)
    graph_client.request("POST", f"/users/{user_id}/events", json=event_body())
    graph_client.batch(
        [BatchItem(str(i), "POST", f"/users/{user_id}/events", event_body()) for i in range(3)]
    )
    pages = list(
        graph_client.pages(
            f"/users/{user_id}/calendarView/delta",
            params=WINDOW,
            headers={"Prefer": "odata.maxpagesize=2"},
        )
    )
    assert [len(p["value"]) for p in pages] == [2, 2]  # the caller's Prefer is kept too
    assert graph_state.prefer_missing == 0
    assert len(graph_state.calls) == 1 + 1 + 3 + 2 and all(c.prefer_ok for c in graph_state.calls)
    graph_requests = [r for r in graph_server.requests if r.path.startswith("/v1.0/")]
    assert all(r.header("Prefer").startswith(PREFER) for r in graph_requests)
    batch = next(r for r in graph_requests if r.path == "/v1.0/$batch").json()
    assert {item["headers"]["Prefer"] for item in batch["requests"]} == {PREFER}


def test_it_follows_next_links_until_the_last_page(graph_client, graph_state, user_id):
    for n in range(25):
        graph_state.outlook_create(MAILBOX, subject=f"Event {n}")
    graph_state.reset_counters()
    items = graph_client.get_all(f"/users/{user_id}/events", params={"$top": 10})
    assert [i["subject"] for i in items] == [f"Event {n}" for n in range(25)]
    assert graph_state.request_count == 3
    assert "$skip=20" in graph_state.calls[-1].url


class ForeignLinkHandler(GraphHandler):
    """A Graph whose page points its nextLink at another host."""

    def handle_GET(self) -> None:  # noqa: N802
        if self.recorded.path == "/v1.0/users/someone/events":
            self.reply(
                200,
                {
                    "value": [{"id": "1"}],
                    "@odata.nextLink": "https://graph.example.net/v1.0/steal?$skip=1",
                },
            )
        else:
            super().handle_GET()


def test_it_refuses_a_next_link_to_another_origin(settings, test_ca, ca_bundle):
    with FakeServer(
        ForeignLinkHandler, tls=test_ca.server_context("foreign"), state=GraphState()
    ) as server:
        settings.ENTRA_AUTHORITY_HOST = server.url
        with GraphClient(
            tenant_id=TENANT,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            base_url=server.url + "/v1.0",
        ) as client:
            pages = client.pages("/users/someone/events")
            assert next(pages)["value"] == [{"id": "1"}]
            with pytest.raises(GraphError) as caught:
                next(pages)
    assert caught.value.permanent
    assert "graph.example.net" in caught.value.message
    assert "GRAPH_BASE_URL" in caught.value.hint
    assert [r.path for r in server.requests if r.path.startswith("/v1.0")] == [
        "/v1.0/users/someone/events"
    ]


# -- retries ------------------------------------------------------------------------------
def test_it_waits_for_retry_after_then_succeeds(graph_client, graph_state, user_id):
    graph_state.throttle(1, retry_after_s=1)
    started = time.monotonic()
    assert graph_client.user(MAILBOX)["id"] == user_id
    assert 0.9 <= time.monotonic() - started < 3
    assert statuses(graph_state) == [429, 200]


def test_a_retry_after_beyond_the_limit_raises_with_retry_after(graph_client, graph_state, user_id):
    graph_state.throttle(1, retry_after_s=120)
    started = time.monotonic()
    with pytest.raises(GraphError) as caught:
        graph_client.user(MAILBOX)
    assert time.monotonic() - started < 1
    assert caught.value.retry_after == 120 and not caught.value.permanent
    assert "120" in caught.value.message
    assert statuses(graph_state) == [429]


def test_it_retries_503_and_gives_up_after_max_retries(graph_client, graph_state, user_id):
    graph_state.fail_item("/users/", status=503, count=2)
    assert graph_client.user(MAILBOX)["id"] == user_id
    assert statuses(graph_state) == [503, 503, 200]
    graph_state.reset_counters()
    graph_state.fail_item("/users/", status=503, count=10)
    with pytest.raises(GraphError) as caught:
        graph_client.user(MAILBOX)
    assert statuses(graph_state) == [503] * 5  # the first try and max_retries=4
    assert caught.value.status_code == 503 and not caught.value.permanent
    assert caught.value.code == "ServiceUnavailable"
    assert "Microsoft Graph failed on its side" in caught.value.hint


def test_a_connection_error_is_a_transient_graph_error(graph_server):
    closed = FakeServer(GraphHandler, state=GraphState())  # bound, never started, then closed
    closed.httpd.server_close()
    with GraphClient(
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        base_url=closed.url + "/v1.0",
        max_retries=1,
        backoff_s=0.01,
    ) as client:
        with pytest.raises(GraphError) as caught:
            client.user(MAILBOX)
    assert not caught.value.permanent
    assert caught.value.error_class == "ConnectionError"


def test_accepted_statuses_are_returned_and_others_raise(graph_client, graph_state, user_id):
    created = graph_client.request("POST", f"/users/{user_id}/events", json=event_body()).body
    graph_state.outlook_update(MAILBOX, created["id"], subject="Moved in Outlook")
    url = f"/users/{user_id}/events/{created['id']}"
    stale = {"If-Match": created["@odata.etag"]}
    answer = graph_client.request("PATCH", url, json={"subject": "x"}, headers=stale, accept=(412,))
    assert answer.status == 412 and answer.body["error"]["code"] == "ErrorIrresolvableConflict"
    with pytest.raises(GraphError) as caught:
        graph_client.request("PATCH", url, json={"subject": "x"}, headers=stale)
    assert caught.value.permanent and caught.value.code == "ErrorIrresolvableConflict"
    assert "changed in Outlook" in caught.value.hint
    assert graph_client.request("GET", url + "x", accept=(404,)).status == 404


# -- $batch -------------------------------------------------------------------------------
def test_a_batch_of_45_items_is_three_requests(graph_client, graph_state, user_id):
    graph_state.reset_counters()
    items = [
        BatchItem(
            f"e{n}",
            "POST",
            f"/users/{user_id}/events",
            event_body(f"Event {n}", transactionId=f"tx-{n}"),
        )
        for n in range(45)
    ]
    results = graph_client.batch(items)
    assert graph_state.request_count == 3 and graph_state.batch_items == 45
    assert sorted(results) == sorted(i.id for i in items)
    assert {r.status for r in results.values()} == {201}
    assert all(r.error is None and r.body["id"] for r in results.values())
    assert len(graph_state.events(MAILBOX)) == 45


def test_a_batch_keeps_going_when_one_item_fails(graph_client, graph_state, user_id):
    kept = graph_state.outlook_create(MAILBOX)
    results = graph_client.batch(
        [
            BatchItem("ok", "GET", f"/users/{user_id}/events/{kept['id']}"),
            BatchItem("gone", "DELETE", f"/users/{user_id}/events/AAkALgAAnothere"),
            BatchItem("new", "POST", f"/users/{user_id}/events", event_body()),
        ]
    )
    assert (results["ok"].status, results["new"].status) == (200, 201)
    assert results["ok"].error is None and results["new"].error is None
    failed = results["gone"]
    assert failed.status == 404 and failed.error is not None
    assert failed.error.code == "ErrorItemNotFound" and failed.error.permanent
    assert "The specified object was not found in the store." in failed.error.message
    assert failed.error.hint == "The item no longer exists in the mailbox (deleted in Outlook?)."


def test_only_the_throttled_batch_items_are_sent_again(graph_client, graph_state, user_id):
    graph_state.reset_counters()
    graph_state.throttle(2, retry_after_s=1)
    items = [
        BatchItem(
            str(n),
            "POST",
            f"/users/{user_id}/events",
            event_body(f"Event {n}", transactionId=f"tx-{n}"),
        )
        for n in range(5)
    ]
    started = time.monotonic()
    results = graph_client.batch(items)
    assert 0.9 <= time.monotonic() - started < 3
    assert {r.status for r in results.values()} == {201}
    assert graph_state.request_count == 2 and graph_state.batch_items == 7
    assert statuses(graph_state, batch_item=True) == [429, 429, 201, 201, 201, 201, 201]
    first_round = [c.url for c in graph_state.calls if c.batch_item][:2]
    assert [c.url for c in graph_state.calls if c.batch_item][5:] == first_round
    assert len(graph_state.events(MAILBOX)) == 5


def test_batch_items_still_throttled_after_the_limit_carry_their_error(
    graph_client, graph_state, user_id
):
    graph_state.throttle(1, retry_after_s=60)
    results = graph_client.batch(
        [BatchItem("a", "GET", f"/users/{user_id}"), BatchItem("b", "GET", f"/users/{user_id}")]
    )
    assert results["a"].status == 429 and results["a"].error is not None
    assert results["a"].error.retry_after == 60 and not results["a"].error.permanent
    assert results["b"].status == 200
    assert graph_state.batch_items == 2


def test_duplicate_batch_ids_are_refused(graph_client):
    with pytest.raises(ValueError, match="duplicate batch item ids: x"):
        graph_client.batch([BatchItem("x", "GET", "/users/a"), BatchItem("x", "GET", "/b")])


# -- hints --------------------------------------------------------------------------------
def test_missing_consent_names_the_permissions_to_grant(graph_client, graph_state, user_id):
    graph_state.consent = False
    with pytest.raises(GraphError) as caught:
        graph_client.user(MAILBOX)
    assert caught.value.status_code == 403 and caught.value.code == "ErrorAccessDenied"
    assert "Access is denied. Check credentials and try again." in caught.value.message
    assert "Calendars.ReadWrite" in caught.value.hint and "User.Read.All" in caught.value.hint
    assert "admin consent" in caught.value.hint


def test_an_access_policy_names_the_mailbox(graph_client, graph_state, user_id):
    graph_state.blocked_mailboxes.add(MAILBOX)
    with pytest.raises(GraphError) as caught:
        graph_client.request("GET", f"/users/{MAILBOX}/events")
    assert "AppOnly AccessPolicy" in caught.value.message
    assert f"the mailbox {MAILBOX}" in caught.value.hint
    assert "application access policy" in caught.value.hint


def test_an_unknown_mailbox_says_what_to_check(graph_client, graph_state):
    with pytest.raises(GraphError) as caught:
        graph_client.user("nobody@contoso.test")
    assert caught.value.code == "ErrorInvalidUser" and caught.value.permanent
    assert "The requested user 'nobody@contoso.test' is invalid." in caught.value.message
    assert caught.value.hint == (
        "Mailbox not found (nobody@contoso.test): check the resource's mailbox email; the user "
        "needs an Exchange Online mailbox."
    )


def test_errors_and_logs_hold_no_secret_or_token(graph_client, graph_state, user_id, caplog):
    caplog.set_level(logging.DEBUG)
    graph_client.user(MAILBOX)
    graph_state.revoke_tokens()
    graph_state.consent = False
    errors = []
    for call in (
        lambda: graph_client.user(MAILBOX),
        lambda: graph_client.request("GET", "/users/x/events/y"),
    ):
        with pytest.raises(GraphError) as caught:
            call()
        errors.append(caught.value)
    graph_state.consent = True
    graph_state.throttle(1, retry_after_s=99)
    with pytest.raises(GraphError) as caught:
        graph_client.user(MAILBOX)
    errors.append(caught.value)
    issued = graph_state.seen_tokens
    assert len(issued) == 2
    texts = [caplog.text] + [t for e in errors for t in (str(e), e.hint, e.response_excerpt)]
    for text in texts:
        assert CLIENT_SECRET not in text
        assert not any(token in text for token in issued)


# -- scope --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("base_url", "scope"),
    [
        ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/.default"),
        ("https://graph.microsoft.us/v1.0", "https://graph.microsoft.us/.default"),
        ("https://dod-graph.microsoft.us/v1.0", "https://dod-graph.microsoft.us/.default"),
        (
            "https://microsoftgraph.chinacloudapi.cn/v1.0",
            "https://microsoftgraph.chinacloudapi.cn/.default",
        ),
        ("https://127.0.0.1:8443/v1.0", GRAPH_SCOPE_DEFAULT),
    ],
)
def test_the_scope_follows_the_national_cloud(base_url, scope):
    assert scope_for(base_url) == scope


def test_from_settings_reads_the_exchange_settings(graph_server):
    class ExchangeSettings:
        tenant_id, client_id, client_secret, timeout_s = TENANT, CLIENT_ID, CLIENT_SECRET, 7

    with GraphClient.from_settings(ExchangeSettings()) as client:
        assert client.base_url == graph_server.url + "/v1.0"
        assert client.connector.timeout_s == 7.0
        assert client.token()
