"""The fake Microsoft Graph behaves as real Graph does where Exchange sync relies on it."""

from __future__ import annotations

import argparse
import ssl
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from exchange_sync.graph import BatchItem, GraphError
from tests.fakes import graph as graph_fake
from tests.fakes.graph.routes import VALIDATION_FAILED

from .test_graph_client import MAILBOX, WINDOW, event_body

pytestmark = pytest.mark.django_db(databases=[])

PROP = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name DimeConnectLink"


@pytest.fixture
def user_id(graph_state):
    return graph_state.add_user(MAILBOX, "Anna Berg")


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def subscribe(graph_client, user_id, url, **extra):
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": url,
        "resource": f"/users/{user_id}/events",
        "clientState": "s3cret-state",
        "expirationDateTime": iso(datetime.now(UTC) + timedelta(hours=48)),
        **extra,
    }
    return graph_client.request("POST", "/subscriptions", json=body).body


# -- events -------------------------------------------------------------------------------
def test_a_repeated_transaction_id_returns_the_first_event(graph_client, graph_state, user_id):
    body = event_body(transactionId="dime-7f3c")
    first = graph_client.request("POST", f"/users/{user_id}/events", json=body)
    again = graph_client.request("POST", f"/users/{user_id}/events", json=body)
    assert first.status == again.status == 201
    assert again.body["id"] == first.body["id"]
    assert [e["id"] for e in graph_state.events(MAILBOX)] == [first.body["id"]]


def test_an_event_looks_like_graphs(graph_client, user_id):
    event = graph_client.request(
        "POST",
        f"/users/{user_id}/events",
        json=event_body(
            body={"contentType": "html", "content": "<p>Fix <b>pump</b></p>"},
            start={"dateTime": "2026-03-02T10:00:00", "timeZone": "Europe/Brussels"},
            showAs="oof",
            sensitivity="private",
        ),
    ).body
    assert len(event["id"]) > 90 and event["@odata.etag"] == f'W/"{event["changeKey"]}"'
    assert event["start"] == {"dateTime": "2026-03-02T09:00:00.0000000", "timeZone": "UTC"}
    assert event["bodyPreview"] == "Fix pump" and event["type"] == "singleInstance"
    assert event["lastModifiedDateTime"].endswith("Z") and len(event["createdDateTime"]) == 28
    assert (event["showAs"], event["sensitivity"]) == ("oof", "private")
    with pytest.raises(GraphError) as caught:
        graph_client.request("POST", f"/users/{user_id}/events", json=event_body(showAs="x"))
    assert caught.value.status_code == 400


def test_if_match_guards_updates_and_deletes(graph_client, graph_state, user_id):
    created = graph_client.request("POST", f"/users/{user_id}/events", json=event_body()).body
    url = f"/users/{user_id}/events/{created['id']}"
    updated = graph_client.request(
        "PATCH", url, json={"subject": "Moved"}, headers={"If-Match": created["@odata.etag"]}
    ).body
    assert updated["subject"] == "Moved" and updated["changeKey"] != created["changeKey"]
    assert updated["lastModifiedDateTime"] > created["lastModifiedDateTime"]
    stale = graph_client.request(
        "DELETE", url, headers={"If-Match": created["@odata.etag"]}, accept=(412,)
    )
    assert stale.status == 412
    assert stale.body["error"]["message"] == (
        "The change key passed in the request does not match the current change key of the item."
    )
    assert (
        graph_client.request("DELETE", url, headers={"If-Match": updated["@odata.etag"]}).status
        == 204
    )
    gone = graph_client.request("PATCH", url, json={"subject": "x"}, accept=(404,))
    assert gone.body["error"] == {
        **gone.body["error"],
        "code": "ErrorItemNotFound",
        "message": "The specified object was not found in the store.",
    }


def test_extended_properties_come_back_only_when_expanded(graph_client, user_id):
    created = graph_client.request(
        "POST",
        f"/users/{user_id}/events",
        json=event_body(singleValueExtendedProperties=[{"id": PROP, "value": "appointment-42"}]),
    ).body
    assert "singleValueExtendedProperties" not in created
    url = f"/users/{user_id}/events/{created['id']}"
    assert "singleValueExtendedProperties" not in graph_client.request("GET", url).body
    expanded = graph_client.request(
        "GET", url, params={"$expand": f"singleValueExtendedProperties($filter=id eq '{PROP}')"}
    ).body
    assert expanded["singleValueExtendedProperties"] == [{"id": PROP, "value": "appointment-42"}]
    found = graph_client.get_all(
        f"/users/{user_id}/events",
        params={
            "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{PROP}' and "
            "ep/value eq 'appointment-42')"
        },
    )
    assert [e["id"] for e in found] == [created["id"]]


# -- calendarView, recurrence and delta ---------------------------------------------------
def test_a_weekly_series_appears_as_occurrences(graph_client, graph_state, user_id):
    master = graph_state.outlook_create(
        MAILBOX,
        subject="Stand-up",
        showAs="tentative",
        sensitivity="personal",
        start={"dateTime": "2026-03-02T08:00:00", "timeZone": "UTC"},
        end={"dateTime": "2026-03-02T08:15:00", "timeZone": "UTC"},
        recurrence={
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"]},
            "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 6},
        },
    )
    assert master["type"] == "seriesMaster"
    assert [e["type"] for e in graph_state.events(MAILBOX)] == ["seriesMaster"]
    items = graph_client.get_all(f"/users/{user_id}/calendarView", params=WINDOW)
    assert [i["start"]["dateTime"][:16] for i in items] == [
        "2026-03-02T08:00",
        "2026-03-04T08:00",
        "2026-03-09T08:00",
        "2026-03-11T08:00",
        "2026-03-16T08:00",
        "2026-03-18T08:00",
    ]
    assert {i["type"] for i in items} == {"occurrence"}
    assert {i["seriesMasterId"] for i in items} == {master["id"]}
    assert len({i["id"] for i in items}) == 6
    assert {(i["subject"], i["showAs"], i["sensitivity"]) for i in items} == {
        ("Stand-up", "tentative", "personal")
    }
    assert items[0]["end"]["dateTime"] == "2026-03-02T08:15:00.0000000"
    narrow = graph_client.get_all(
        f"/users/{user_id}/calendarView",
        params={"startDateTime": "2026-03-03T00:00:00Z", "endDateTime": "2026-03-10T00:00:00Z"},
    )
    assert [i["start"]["dateTime"][:10] for i in narrow] == ["2026-03-04", "2026-03-09"]


def test_delta_pages_then_reports_only_changes(graph_client, graph_state, user_id):
    ids = [
        graph_state.outlook_create(MAILBOX, **event_body(f"E{n}", day=n + 2))["id"]
        for n in range(5)
    ]
    graph_state.outlook_create(
        MAILBOX,
        **event_body("Outside", day=2)
        | {
            "start": {"dateTime": "2026-05-02T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-05-02T10:00:00", "timeZone": "UTC"},
        },
    )
    path, small = f"/users/{user_id}/calendarView/delta", {"Prefer": "odata.maxpagesize=2"}
    pages = list(graph_client.pages(path, params=WINDOW, headers=small))
    assert [len(p["value"]) for p in pages] == [2, 2, 1]
    assert all("$skiptoken=" in p["@odata.nextLink"] for p in pages[:2])
    delta_link = pages[-1]["@odata.deltaLink"]
    assert "$deltatoken=" in delta_link and "@odata.nextLink" not in pages[-1]
    assert sorted(i["id"] for p in pages for i in p["value"]) == sorted(ids)

    assert graph_client.get_all(delta_link) == []  # nothing changed
    graph_state.outlook_update(MAILBOX, ids[0], subject="Renamed")
    graph_state.outlook_delete(MAILBOX, ids[1])
    graph_state.outlook_update(
        MAILBOX,
        ids[2],
        start={"dateTime": "2026-06-01T09:00:00", "timeZone": "UTC"},
        end={"dateTime": "2026-06-01T10:00:00", "timeZone": "UTC"},
    )
    added = graph_state.outlook_create(MAILBOX, **event_body("New", day=20))
    pages = list(graph_client.pages(delta_link))
    changes = {i["id"]: i for p in pages for i in p["value"]}
    assert changes[ids[0]]["subject"] == "Renamed" and "@removed" not in changes[ids[0]]
    assert changes[added["id"]]["subject"] == "New"
    assert changes[ids[1]] == {
        "@odata.type": "#microsoft.graph.event",
        "id": ids[1],
        "@removed": {"reason": "deleted"},
    }
    assert changes[ids[2]]["@removed"] == {"reason": "deleted"}  # moved out of the window
    assert len(changes) == 4

    graph_state.expire_delta_tokens()
    with pytest.raises(GraphError) as caught:
        graph_client.get_all(pages[-1]["@odata.deltaLink"])
    assert caught.value.status_code == 410 and caught.value.sync_state_lost
    assert caught.value.code == "SyncStateNotFound"
    assert "The sync state generation is not found." in caught.value.message


# -- subscriptions ------------------------------------------------------------------------
def test_a_subscription_is_validated_by_its_endpoint(graph_client, graph_state, user_id, receiver):
    endpoint = receiver()
    created = subscribe(
        graph_client,
        user_id,
        endpoint.url + "/hooks/graph?tenant=1",
        lifecycleNotificationUrl=endpoint.url + "/hooks/lifecycle",
    )
    assert created["resource"] == f"/users/{user_id}/events"
    assert created["clientState"] == "s3cret-state"
    assert created["applicationId"] == graph_fake.CLIENT_ID
    assert created["lifecycleNotificationUrl"] == endpoint.url + "/hooks/lifecycle"
    validations = endpoint.requests
    assert [r.path for r in validations] == ["/hooks/graph", "/hooks/lifecycle"]
    assert validations[0].query["tenant"] == ["1"]
    assert validations[0].query["validationToken"][0].startswith("Validation: ")
    assert validations[0].header("Content-Type").startswith("text/plain")
    listed = graph_client.request("GET", "/subscriptions").body["value"]
    assert [s["id"] for s in listed] == [created["id"]]


def test_a_subscription_whose_endpoint_does_not_echo_is_refused(graph_client, user_id, receiver):
    endpoint = receiver(echo=False)
    with pytest.raises(GraphError) as caught:
        subscribe(graph_client, user_id, endpoint.url + "/hooks/graph")
    assert caught.value.status_code == 400 and caught.value.code == "InvalidRequest"
    assert VALIDATION_FAILED in caught.value.message


def test_the_expiration_is_limited_to_4230_minutes(graph_client, user_id, receiver):
    endpoint = receiver()
    for when, reason in (
        (timedelta(minutes=4231), "only be 4230 minutes in the future"),
        (timedelta(minutes=-5), "is in the past"),
    ):
        with pytest.raises(GraphError) as caught:
            subscribe(
                graph_client,
                user_id,
                endpoint.url,
                expirationDateTime=iso(datetime.now(UTC) + when),
            )
        assert caught.value.code == "ExtensionError" and reason in caught.value.message
    created = subscribe(graph_client, user_id, endpoint.url)
    later = iso(datetime.now(UTC) + timedelta(minutes=4200))
    renewed = graph_client.request(
        "PATCH", f"/subscriptions/{created['id']}", json={"expirationDateTime": later}
    ).body
    assert renewed["expirationDateTime"].startswith(later[:19])
    assert graph_client.request("DELETE", f"/subscriptions/{created['id']}").status == 204
    assert (
        graph_client.request("DELETE", f"/subscriptions/{created['id']}", accept=(404,)).status
        == 404
    )


def test_changes_post_notifications_with_the_client_state(
    graph_client, graph_state, user_id, receiver
):
    endpoint = receiver()
    created = subscribe(graph_client, user_id, endpoint.url + "/hooks/graph")
    event = graph_state.outlook_create(MAILBOX, subject="Dentist")
    graph_client.request(
        "PATCH", f"/users/{user_id}/events/{event['id']}", json={"subject": "Dentist (moved)"}
    )
    graph_client.batch([BatchItem("1", "DELETE", f"/users/{user_id}/events/{event['id']}")])
    sent = graph_state.wait_notifications(3)
    assert sorted(n["change_type"] for n in sent) == ["created", "deleted", "updated"]
    assert {n["status"] for n in sent} == {202}
    note = next(n for n in sent if n["change_type"] == "created")["payload"]["value"][0]
    assert note["subscriptionId"] == created["id"] and note["clientState"] == "s3cret-state"
    assert note["resource"] == f"Users/{user_id}/Events/{event['id']}"
    assert note["resourceData"]["id"] == event["id"]
    assert note["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"
    assert note["tenantId"] == graph_fake.TENANT
    posted = [r for r in endpoint.requests if "validationToken" not in r.query]
    assert len(posted) == 3 and posted[0].header("Content-Type") == "application/json"


def test_expired_and_dropping_subscriptions_send_nothing(
    graph_client, graph_state, user_id, receiver
):
    endpoint = receiver()
    created = subscribe(graph_client, user_id, endpoint.url)
    graph_state.drop_notifications = True
    graph_state.outlook_create(MAILBOX)
    assert graph_state.notifications_dropped == 1
    graph_state.drop_notifications = False
    graph_state.expire_subscription(created["id"])
    graph_state.outlook_create(MAILBOX)
    time.sleep(0.2)  # deliveries start at once; nothing may have been posted
    assert graph_state.notifications_sent == []
    assert (
        graph_client.request("GET", f"/subscriptions/{created['id']}", accept=(404,)).status == 404
    )


def test_lifecycle_notifications_reach_the_lifecycle_url(
    graph_client, graph_state, user_id, receiver
):
    endpoint = receiver()
    created = subscribe(
        graph_client,
        user_id,
        endpoint.url + "/hooks/graph",
        lifecycleNotificationUrl=endpoint.url + "/hooks/lifecycle",
    )
    assert graph_state.send_lifecycle(created["id"], "reauthorizationRequired") == 202
    posted = endpoint.requests[-1]
    assert posted.path == "/hooks/lifecycle"
    assert posted.json()["value"][0] == {
        **posted.json()["value"][0],
        "subscriptionId": created["id"],
        "lifecycleEvent": "reauthorizationRequired",
        "clientState": "s3cret-state",
    }
    graph_state.send_lifecycle(created["id"], "subscriptionRemoved")
    assert graph_client.request("GET", "/subscriptions").body["value"] == []


# -- faults and counters ------------------------------------------------------------------
def test_latency_delays_every_graph_answer(graph_client, graph_state, user_id):
    graph_client.user(MAILBOX)
    graph_state.latency_s = 0.3
    started = time.monotonic()
    graph_client.user(MAILBOX)
    assert time.monotonic() - started >= 0.3


def test_the_counters_see_requests_batch_items_and_missing_prefer(
    graph_server, graph_client, graph_state, user_id, ca_bundle
):
    graph_client.user(MAILBOX)
    graph_client.batch([BatchItem(str(n), "GET", f"/users/{user_id}") for n in range(4)])
    token = graph_client.token()
    with httpx.Client(verify=ssl.create_default_context(cafile=ca_bundle)) as raw:
        bare = raw.get(
            f"{graph_server.url}/v1.0/users/{user_id}", headers={"Authorization": f"Bearer {token}"}
        )
        anonymous = raw.get(f"{graph_server.url}/v1.0/users/{user_id}")
        too_many = raw.post(
            f"{graph_server.url}/v1.0/$batch",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "requests": [{"id": str(n), "method": "GET", "url": "/users"} for n in range(21)]
            },
        )
    assert bare.status_code == 200 and graph_state.prefer_missing == 1
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert too_many.status_code == 400 and "limit of 20" in too_many.json()["error"]["message"]
    assert graph_state.request_count == 5 and graph_state.batch_items == 4
    assert graph_state.token_requests == 1
    graph_state.reset_counters()
    assert (graph_state.request_count, graph_state.batch_items, graph_state.calls) == (0, 0, [])


def test_throttled_answers_look_like_graphs(
    graph_server, graph_client, graph_state, user_id, ca_bundle
):
    token = graph_client.token()
    graph_state.throttle(1, retry_after_s=3)
    graph_state.fail_item("/events", status=503)
    trust = ssl.create_default_context(cafile=ca_bundle)
    with httpx.Client(verify=trust, headers={"Authorization": f"Bearer {token}"}) as raw:
        throttled = raw.get(f"{graph_server.url}/v1.0/users/{user_id}")
        unavailable = raw.get(f"{graph_server.url}/v1.0/users/{user_id}/events")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["code"] == "ServiceUnavailable"


def test_the_http_controls_drive_a_standalone_fake(graph_server, graph_state, ca_bundle):
    trust = ssl.create_default_context(cafile=ca_bundle)
    with httpx.Client(base_url=graph_server.url + "/_control", verify=trust) as control:
        made = control.post("/users", json={"email": "ben@contoso.test"}).json()
        created = control.post("/outlook/ben@contoso.test/events", json={"subject": "Gym"})
        control.post("/latency", json={"seconds": 0.01})
        control.post("/throttle", json={"count": 2, "retry_after_s": 1})
        control.post("/expire-delta")
        stats = control.get("/stats").json()
    assert created.status_code == 201 and created.json()["subject"] == "Gym"
    assert stats["users"]["ben@contoso.test"] == {"id": made["id"], "events": 1}
    assert stats["latency_s"] == 0.01 and graph_state.failures[0].count == 2


def test_it_runs_alone_and_prints_its_settings(capsys):
    server = graph_fake.build(argparse.Namespace(port=0, latency_ms=5.0, user=["c@x.test"]))
    try:
        out = capsys.readouterr().out
    finally:
        server.httpd.server_close()
    assert f"GRAPH_BASE_URL={server.url}/v1.0" in out
    assert f"ENTRA_AUTHORITY_HOST={server.url}" in out and "HTTP_CA_BUNDLE=" in out
    assert graph_fake.CLIENT_SECRET in out and "c@x.test" in out
    assert server.state.latency_s == 0.005
