"""Events in over HTTP, write-backs out: the web server and a qcluster as real processes.

One deployment serves the module; each test uses its own source app (and so its own
connectors and fakes), so the tests do not see each other's dispatches.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.fakes import bc_rest, webhook_receiver
from tests.fakes.auth_gate import AuthPolicy
from tests.fakes.server import FakeServer
from tests.fakes.soap_server import soap_server

from .backends import redis_keys, redis_url
from .events import event, new_guid
from .harness import App, deployed, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BC_LOGIN, BC_PASSWORD = "svc-dime", "Pa55-e2e-bc"
SOAP_LOGIN, SOAP_PASSWORD = "svc-nav", "Pa55-e2e-nav"
SHORT_RETRIES = "0, 1s, 2s, 2s, 2s"  # all ≤ 15 s: the task itself waits and retries

FLOW, FLAKY, REJECT, DUP = "E2EFLOW", "E2EFLAKY", "E2EREJECT", "E2EDUP"


@dataclass
class Fakes:
    hook: FakeServer
    bc: FakeServer
    soap: FakeServer
    flaky_hook: FakeServer
    flaky_bc: FakeServer
    reject_hook: FakeServer
    dup_hook: FakeServer

    def all(self) -> list[FakeServer]:
        return list(vars(self).values())


@pytest.fixture(scope="module")
def fakes() -> Iterator[Fakes]:
    fakes = Fakes(
        hook=webhook_receiver.make(secrets=[SECRET]),
        bc=bc_rest.make(auth=AuthPolicy("basic", BC_LOGIN, BC_PASSWORD)),
        soap=soap_server(policy=AuthPolicy("basic", SOAP_LOGIN, SOAP_PASSWORD)),
        flaky_hook=webhook_receiver.make(secrets=[SECRET]),
        flaky_bc=bc_rest.make(),
        reject_hook=webhook_receiver.make(secrets=[SECRET]),
        dup_hook=webhook_receiver.make(secrets=[SECRET]),
    )
    for server in fakes.all():
        server.start()
    yield fakes
    for server in fakes.all():
        server.stop()


def hook(name: str, server: FakeServer, source_app: str, **extra: object) -> dict[str, object]:
    return {"name": name, "type": "webhook", "api_type": "rest", "auth_type": "none",
            "uri": server.url + "/hooks/dime", "source_app": source_app,
            "signing_secret": SECRET, "timeout_s": 5, **extra}


def connectors(fakes: Fakes) -> list[dict[str, object]]:
    """The apply_connectors file: a webhook, a Business Central REST API and a NAV SOAP page
    for FLOW; one failing back office each for the other tests."""
    return [
        hook("E2E hook", fakes.hook, FLOW),
        {"name": "E2E BC REST", "type": "bc_onprem", "api_type": "rest", "auth_type": "basic",
         "uri": bc_rest.entity_set_url(fakes.bc), "source_app": FLOW, "login": BC_LOGIN,
         "password": {"env": "E2E_BC_PASSWORD"}, "timeout_s": 5},
        {"name": "E2E NAV SOAP", "type": "nav", "api_type": "soap", "auth_type": "basic",
         "uri": fakes.soap.url + "/NAV/WS/CRONUS/Page/Appointment", "source_app": FLOW,
         "login": SOAP_LOGIN, "password": SOAP_PASSWORD, "timeout_s": 5},
        hook("E2E flaky hook", fakes.flaky_hook, FLAKY, retry_schedule=SHORT_RETRIES),
        {"name": "E2E flaky BC REST", "type": "bc_onprem", "api_type": "rest",
         "auth_type": "none", "uri": bc_rest.entity_set_url(fakes.flaky_bc),
         "source_app": FLAKY, "timeout_s": 5, "retry_schedule": SHORT_RETRIES},
        hook("E2E rejecting hook", fakes.reject_hook, REJECT, retry_schedule=SHORT_RETRIES),
        hook("E2E dedup hook", fakes.dup_hook, DUP),
    ]


@pytest.fixture(scope="module")
def app(fakes: Fakes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    with deployed(tmp_path_factory.mktemp("e2e-write-back"), connectors=connectors(fakes),
                  source_apps=[FLOW, FLAKY, REJECT, DUP],
                  env={"E2E_BC_PASSWORD": BC_PASSWORD}) as app:
        yield app


def recover(server: FakeServer) -> None:
    """The back office answers normally again (its record of requests is kept)."""
    server.httpd.faults = None


def by_appointment(values: list[tuple[str, str]], guid: str) -> list[str]:
    return [value for key, value in values if key.lower() == guid.lower()]


def test_events_go_out_signed_to_every_back_office_in_order_per_appointment(app, fakes):
    guids = [new_guid() for _ in range(4)]
    created = app.accept_events([event("create", g, FLOW) for g in guids])
    assert [(r["status"], r["dispatches"]) for r in created] == [("accepted", 3)] * 4
    for guid in reversed(guids):  # one request each, while the creates are still going out
        app.accept_events([event("update", guid, FLOW, step=1, subject="Moved to Tuesday")])
    app.accept_events([event("delete", g, FLOW, step=2) for g in guids[1::2] + guids[0::2]])

    rows = app.wait_settled(FLOW, 4 * 3 * 3, timeout=60)
    assert {r["status"] for r in rows} == {"succeeded"}

    deliveries = fakes.hook.state.deliveries
    assert len(fakes.hook.requests) == len(deliveries) == 12  # each signature verified
    sent_ids = sorted(d.header("webhook-id") for d in deliveries)
    assert sent_ids == sorted(r["message_id"] for r in rows if r["connector"] == "E2E hook")
    hook_types = [(d.json()["data"]["guid"], d.json()["type"]) for d in deliveries]
    bc_actions = [(r["appointmentGuid"], r["databaseAction"]) for r in fakes.bc.state.records]
    soap_actions = [(r["Appointment_Guid"], r["Database_Action"])
                    for r in fakes.soap.state.records()]
    for guid in guids:
        assert by_appointment(hook_types, guid) == [
            "appointment.created", "appointment.updated", "appointment.deleted"]
        assert by_appointment(bc_actions, guid) == ["I", "U", "D"]
        assert by_appointment(soap_actions, guid) == ["I", "U", "D"]
    soap_calls = {r.header("SOAPAction") for r in fakes.soap.requests if r.method == "POST"}
    assert {action.strip('"').rpartition(":")[2] for action in soap_calls} == {"Create"}
    updated = [d.json()["data"] for d in deliveries if d.json()["type"] == "appointment.updated"]
    assert {u["subject"] for u in updated} == {"Moved to Tuesday"}


def test_a_back_office_answering_503_for_a_while_gets_everything_once_it_recovers(app, fakes):
    fakes.flaky_hook.fail(status=503, body=b'{"error": "maintenance"}')
    fakes.flaky_bc.fail(status=503, body=b'{"error": {"code": "Unavailable", "message": "x"}}')
    guids = [new_guid() for _ in range(3)]
    app.accept_events([event("create", g, FLAKY) for g in guids])
    # Both back offices have refused a first attempt and a retry before they come back.
    app.wait(lambda: len(fakes.flaky_hook.requests) >= 2 and len(fakes.flaky_bc.requests) >= 2,
             timeout=30, what="two refused attempts at each back office")
    recover(fakes.flaky_hook)
    recover(fakes.flaky_bc)

    rows = app.wait_settled(FLAKY, 6, timeout=60)
    assert {r["status"] for r in rows} == {"succeeded"}
    assert all(r["last_error"] == "" for r in rows)
    hook_rows = [r for r in rows if r["connector"] == "E2E flaky hook"]
    delivered = [d.header("webhook-id") for d in fakes.flaky_hook.state.deliveries]
    assert sorted(delivered) == sorted(r["message_id"] for r in hook_rows)  # each exactly once
    assert sorted(r["appointmentGuid"] for r in fakes.flaky_bc.state.records) == sorted(guids)
    logs = [app.attempt_outcomes(r["id"]) for r in rows]
    assert all(log[-1] == "succeeded" and set(log[:-1]) <= {"retry"} for log in logs)
    assert sum(log.count("retry") for log in logs) >= 4


def test_a_permanent_400_fails_at_once_with_its_hint_and_is_never_retried(app, fakes):
    # Its connector retries after 1 s on a transient error: a wrongly retried 400 would show.
    fakes.reject_hook.fail(status=400, body=b'{"error": "unknown field: time_marker"}')
    app.accept_events([event("create", new_guid(), REJECT)])

    [row] = app.wait_settled(REJECT, 1, timeout=30)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("failed", 1, 400)
    assert row["last_hint"].startswith("The back office refused the data")
    assert "unknown field: time_marker" in row["last_error"]
    assert app.attempt_outcomes(row["id"]) == ["failed"]

    assert app.run_sweeper() == 0  # a failed dispatch is not due: nothing to queue
    time.sleep(2)  # room for a retry, were one (wrongly) scheduled
    assert len(fakes.reject_hook.requests) == 1
    assert app.dispatches(REJECT)[0]["status"] == "failed"


def test_a_repeated_event_id_is_answered_duplicate_and_sent_once(app, fakes):
    original = event("create", new_guid(), DUP, event_id="erp-000042")
    [first] = app.accept_events([original])
    [again] = app.accept_events([original])
    twice_in_a_batch = app.accept_events([original, original])
    assert (first["status"], first["dispatches"]) == ("accepted", 1)
    assert (again["status"], again["dispatches"]) == ("duplicate", 0)
    assert [r["status"] for r in twice_in_a_batch] == ["duplicate", "duplicate"]

    [row] = app.wait_settled(DUP, 1, timeout=30)
    assert row["status"] == "succeeded"
    app.run_sweeper()
    time.sleep(1)
    assert [d.header("webhook-id") for d in fakes.dup_hook.state.deliveries] == [
        row["message_id"]]
    stored = app.query("SELECT count(*) AS n FROM connectors_appointmentevent"
                       " WHERE event_id = %s", ["erp-000042"])
    assert stored[0]["n"] == 1


def test_tasks_travel_through_the_configured_broker(app):
    """Redis when REDIS_URL is set (CI's second pass), else the database (ORM broker)."""
    health = app.get("/healthz").json()
    assert health["broker"] == {"ok": True, "detail": "redis" if redis_url() else "orm"}
    # Results the cluster stored for the deliveries above (its monitor writes them).
    app.wait(lambda: app.query("SELECT count(*) AS n FROM django_q_task WHERE func = %s",
                               ["connectors.tasks.deliver_backlog"])[0]["n"],
             timeout=15, what="a stored backlog task result")
    if redis_url():  # the cluster reports to Redis under this run's name; the ORM queue is idle
        wait_until(lambda: redis_keys(f"django_q:{app.run_name}:cluster:*"), timeout=10,
                   what="the cluster's stats in Redis")
        assert app.query("SELECT count(*) AS n FROM django_q_ormq")[0]["n"] == 0
