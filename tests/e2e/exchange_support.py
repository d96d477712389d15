"""Support for the Exchange sync end-to-end tests (tests/e2e/test_exchange.py).

- `exchange_deployment(...)`: an App (tests/e2e/harness) pointed at the fake Graph over HTTPS,
  with the web server started first so that PUBLIC_BASE_URL (the address Graph calls back) is
  its URL before the cluster starts, Exchange sync configured and one signed webhook connector
  for SOURCE_APP.
- `add_mailbox(...)`: a user at the fake and a synced Resource in the app (optionally with
  outbound rules and its own privacy filters), subscribed through the subscriptions task, its
  first (full) delta round done.
- `planner_event(...)`: an appointment event as a back office posts it, `occurred_at` now
  (the Outlook side's changes carry the real clock too, so a planner change made later is newer).
- Reading the app's database (`appointment`, `mailbox_state`, `exchange_events`, ...), the
  fake's record (`graph_writes`, `change_notifications`, ...) and waiting for a mailbox to be
  quiet (`settle`).

Everything the app stores is read with `App.query` (SQLite or PostgreSQL, whichever the run
uses); changes to the app's state go through `App.shell`.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fakes.graph import CLIENT_ID, CLIENT_SECRET, TENANT, GraphState
from tests.fakes.server import FakeServer

from .events import appointment as appointment_body
from .harness import App

SOURCE_APP = "E2EEXO"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOTIFICATIONS_PATH = "/api/v1/exchange/notifications/"
LIFECYCLE_PATH = "/api/v1/exchange/lifecycle/"
DEBOUNCE_S = 1
SAFETY_ROUND_MINUTES = 60  # no safety round during the module unless a test ages a mailbox
SETTLE_TIMEOUT_S = 30.0


# --- the deployment -------------------------------------------------------------------------


CONFIGURE = f"""
import json
from exchange_sync.models import ExchangeSettings
exchange = ExchangeSettings.load()
exchange.enabled = True
exchange.tenant_id, exchange.client_id = {TENANT!r}, {CLIENT_ID!r}
exchange.client_secret = {CLIENT_SECRET!r}
exchange.debounce_s = {DEBOUNCE_S}
exchange.safety_round_minutes = {SAFETY_ROUND_MINUTES}
exchange.save()
print(json.dumps(exchange.configured))
"""


def webhook_connector(receiver: FakeServer) -> dict[str, Any]:
    """The apply_connectors entry: SOURCE_APP's back office is a signed webhook."""
    return {"name": "E2E Exchange hook", "type": "webhook", "api_type": "rest",
            "auth_type": "none", "uri": receiver.url + "/hooks/dime", "source_app": SOURCE_APP,
            "signing_secret": SECRET, "timeout_s": 5}


@contextmanager
def exchange_deployment(workdir: Path, *, graph: FakeServer, ca_file: str,
                        receiver: FakeServer) -> Iterator[App]:
    """A deployment talking to `graph` (trusted through `ca_file`), writing back to
    `receiver`: web first, PUBLIC_BASE_URL = its URL, Exchange configured, then one qcluster.
    Every process is stopped and the database dropped on exit."""
    app = App(workdir)
    app.env.update(HTTP_CA_BUNDLE=ca_file, ENTRA_AUTHORITY_HOST=graph.url,
                   GRAPH_BASE_URL=graph.url + "/v1.0")
    try:
        app.setup(connectors=[webhook_connector(receiver)], source_apps=[SOURCE_APP])
        app.start_web()
        app.env["PUBLIC_BASE_URL"] = app.web_url  # what Graph calls back
        if app.shell(CONFIGURE) is not True:
            raise AssertionError("Exchange sync is not configured after CONFIGURE")
        app.start_cluster()
        yield app
    finally:
        app.close()


# --- mailboxes ------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """A synced resource: its pk in the app, its resource no and mailbox at the fake.
    `notified` counts the change notifications `settle` has waited for so far."""

    pk: int
    number: str
    email: str
    user_id: str
    notified: int = 0

    @property
    def entry(self) -> dict[str, str]:
        """The resource as an appointment event names it."""
        return {"resource_no": self.number, "email": self.email}


def create_resources_code(specs: Sequence[dict[str, Any]], *, subscribe: bool) -> str:
    """Shell code creating synced resources (and their outbound rules); with `subscribe` it
    then runs the subscriptions task, as the schedule does. Prints {"pks", "summary"}."""
    lines = [
        "import json",
        "from exchange_sync.models import OutboundRule, Resource",
        "from exchange_sync.tasks import renew_subscriptions_task",
        "pks = []",
        f"for spec in {list(specs)!r}:",
        "    rules = spec.pop('rules')",
        f"    resource = Resource.objects.create(source_app={SOURCE_APP!r}, sync_enabled=True,"
        " **spec)",
        "    for position, (field, operator, value) in enumerate(rules):",
        "        OutboundRule.objects.create(resource=resource, position=position, field=field,",
        "                                    operator=operator, value=value)",
        "    pks.append(resource.pk)",
        f"summary = renew_subscriptions_task() if {subscribe!r} else ''",
        "print(json.dumps({'pks': pks, 'summary': summary}))",
    ]
    return "\n".join(lines) + "\n"


def add_mailboxes(app: App, state: GraphState, *numbers: str, subscribe: bool = True,
                  rules: Sequence[tuple[str, str, str]] = (),
                  **resource_fields: Any) -> tuple[list[Mailbox], str]:
    """Users at the fake and synced resources in the app, one per number (each with `rules`
    and `resource_fields`); with `subscribe`, the subscriptions task runs and this returns once
    every new mailbox has its subscription at the fake and its first full round is done.
    Returns the mailboxes and the task's summary ("" without `subscribe`)."""
    specs, mailboxes = [], []
    for number in numbers:
        email = f"{number.lower()}@contoso.test"
        user_id = state.add_user(email)
        specs.append({"resource_no": number, "name": f"Resource {number}", "email": email,
                      "rules": [list(rule) for rule in rules], **resource_fields})
        mailboxes.append(Mailbox(0, number, email, user_id))
    answer = app.shell(create_resources_code(specs, subscribe=subscribe))
    for mailbox, pk in zip(mailboxes, answer["pks"], strict=True):
        mailbox.pk = int(pk)
    if subscribe:
        for mailbox in mailboxes:
            app.wait(lambda m=mailbox: fake_subscriptions(state, m), timeout=20,
                     what=f"a subscription of {mailbox.email} at the fake")
            wait_first_round(app, mailbox)
    return mailboxes, str(answer["summary"])


def add_mailbox(app: App, state: GraphState, number: str, **options: Any) -> Mailbox:
    [mailbox], _ = add_mailboxes(app, state, number, **options)
    return mailbox


def wait_first_round(app: App, mailbox: Mailbox, timeout: float = SETTLE_TIMEOUT_S) -> None:
    """The full round scheduled after the subscription was created has run, successfully."""
    def done() -> bool:
        row = mailbox_state(app, mailbox)
        return bool(row and row["last_full_round_at"] and row["last_round_ok"]
                    and not row["round_due_at"] and not row["full_round_needed"])

    app.wait(done, timeout=timeout, what=f"the first delta round of {mailbox.email}")


# --- planner events -------------------------------------------------------------------------


def new_guid() -> str:
    return str(uuid.uuid4())


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_at(days: int, hour: int) -> datetime:
    """Midnight UTC `days` from today, plus `hour` hours: inside the sync window."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days, hours=hour)


def planner_event(action: str, guid: str, mailboxes: Sequence[Mailbox], *, start: datetime,
                  hours: float = 2, **overrides: Any) -> dict[str, Any]:
    """One event for the events API: the appointment assigned to `mailboxes`' resources,
    from `start` for `hours`, occurred now (so it is newer than anything stored)."""
    occurred = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    body = appointment_body(guid, SOURCE_APP, resources=[m.entry for m in mailboxes],
                            start=utc_text(start), end=utc_text(start + timedelta(hours=hours)),
                            **overrides)
    return {"event_id": f"{action}-{guid}-{uuid.uuid4().hex[:8]}", "action": action,
            "occurred_at": occurred, "appointment": body}


# --- the app's database ---------------------------------------------------------------------


def as_json(value: Any) -> Any:
    """A JSON column's value (SQLite: text; PostgreSQL: already parsed)."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def as_datetime(value: Any) -> datetime | None:
    """A datetime column's value, aware UTC (SQLite: naive UTC text; PostgreSQL: aware)."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def guid_param(app: App, guid: str) -> str:
    """A GUID as the app's database compares it (SQLite: 32 hex digits; PostgreSQL: uuid)."""
    return uuid.UUID(guid).hex if app.database.vendor == "sqlite" else guid


def guid_text(value: Any) -> str:
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))


def appointment(app: App, guid: str) -> dict[str, Any] | None:
    """The stored appointment (`data` parsed, `deleted` a bool), or None."""
    rows = app.query("SELECT id, data, deleted, state_at FROM connectors_appointment"
                     " WHERE guid = %s", [guid_param(app, guid)])
    if not rows:
        return None
    row = rows[0]
    return {**row, "data": as_json(row["data"]), "deleted": bool(row["deleted"])}


def appointments_of(app: App, mailbox: Mailbox) -> list[dict[str, Any]]:
    """Every appointment ever assigned to the mailbox's resource, oldest first."""
    rows = app.query(
        "SELECT a.id, a.guid, a.data, a.deleted FROM connectors_appointment a"
        " JOIN connectors_appointmentresource r ON r.appointment_id = a.id"
        " WHERE r.resource_no = %s AND a.source_app = %s ORDER BY a.id",
        [mailbox.number, SOURCE_APP])
    return [{**row, "guid": guid_text(row["guid"]), "data": as_json(row["data"]),
             "deleted": bool(row["deleted"])} for row in rows]


def exchange_events(app: App, guid: str) -> list[dict[str, Any]]:
    """The AppointmentEvents the Exchange sync accepted for the appointment, oldest first."""
    return app.query(
        "SELECT e.event_id, e.action, e.stale FROM connectors_appointmentevent e"
        " JOIN connectors_appointment a ON a.id = e.appointment_id"
        " WHERE a.guid = %s AND e.source = 'exchange' ORDER BY e.id",
        [guid_param(app, guid)])


def dispatch_actions(app: App, guid: str) -> list[str]:
    return [row["action"] for row in app.dispatches(SOURCE_APP) if row["appointment"] == guid]


def mailbox_state(app: App, mailbox: Mailbox) -> dict[str, Any] | None:
    rows = app.query("SELECT * FROM exchange_sync_mailboxstate WHERE resource_id = %s",
                     [mailbox.pk])
    if not rows:
        return None
    row = rows[0]
    for key in ("last_round_at", "last_full_round_at", "round_due_at", "round_lock_until",
                "held_at"):
        row[key] = as_datetime(row[key])
    row["held_deletions"] = as_json(row["held_deletions"])
    return row


def links(app: App, mailbox: Mailbox) -> list[dict[str, Any]]:
    return app.query("SELECT id, appointment_id, origin, event_id, change_key"
                     " FROM exchange_sync_eventlink WHERE resource_id = %s ORDER BY id",
                     [mailbox.pk])


def subscription_row(app: App, mailbox: Mailbox) -> dict[str, Any] | None:
    rows = app.query("SELECT subscription_id, expires_at, renewed_at"
                     " FROM exchange_sync_subscription WHERE resource_id = %s", [mailbox.pk])
    if not rows:
        return None
    row = rows[0]
    row["expires_at"], row["renewed_at"] = (as_datetime(row["expires_at"]),
                                            as_datetime(row["renewed_at"]))
    return row


def sync_log(app: App, mailbox: Mailbox, kind: str) -> list[dict[str, Any]]:
    return app.query("SELECT kind, message, detail FROM exchange_sync_synclogentry"
                     " WHERE resource_id = %s AND kind = %s ORDER BY id", [mailbox.pk, kind])


def task_runs(app: App, name: str, since: datetime) -> int:
    """How many django-q2 tasks named `name` the cluster started at or after `since`."""
    rows = app.query("SELECT started FROM django_q_task WHERE name = %s", [name])
    return sum(1 for row in rows if (as_datetime(row["started"]) or since) >= since)


def run_in_app(app: App, code: str) -> Any:
    """Run dedented `code` in `manage.py shell`; it prints one JSON value last."""
    return app.shell(textwrap.dedent(code))


# --- the fake Graph's record ----------------------------------------------------------------


def fake_subscriptions(state: GraphState, mailbox: Mailbox) -> list[Any]:
    """The fake's live subscriptions on the mailbox's events."""
    with state.graph_lock:
        return [s for s in state.subscriptions.values()
                if s.user_id == mailbox.user_id and s.live()]


def change_notifications(state: GraphState, mailbox: Mailbox) -> list[dict[str, Any]]:
    """The change notifications the fake delivered for events of the mailbox."""
    prefix = f"Users/{mailbox.user_id}/"
    with state.graph_lock:
        return [n for n in state.notifications_sent if n["kind"] == "change"
                and n["payload"]["value"][0]["resource"].startswith(prefix)]


def graph_writes(state: GraphState, mailbox: Mailbox, method: str,
                 event_id: str = "") -> list[str]:
    """URLs of the Graph calls (and $batch items) writing the mailbox's events with `method`
    (POST, PATCH, DELETE), only those of `event_id` when given."""
    prefixes = (f"/users/{mailbox.email}/events", f"/users/{mailbox.user_id}/events")
    with state.graph_lock:
        urls = [c.url for c in state.calls if c.method == method]
    return [url for url in urls if url.lower().startswith(prefixes) and event_id in url]


def outlook_times(event: dict[str, Any]) -> tuple[str, str]:
    """An event's (start, end) as the event API writes them ("…Z")."""
    def text(value: dict[str, str]) -> str:
        assert value["timeZone"] == "UTC", value
        return value["dateTime"][:19] + "Z"

    return text(event["start"]), text(event["end"])


def graph_time(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
            "timeZone": "UTC"}


# --- waiting --------------------------------------------------------------------------------


def quiet(app: App, mailbox: Mailbox) -> bool:
    """A round of the mailbox ran after its last change notification (or it had none), no
    round is due or running, and none of its appointments waits for an outbound push."""
    row = mailbox_state(app, mailbox)
    if row is None or row["last_round_at"] is None or row["round_due_at"] is not None:
        return False
    if row["round_lock_until"] is not None:
        return False
    received = app.query(
        "SELECT max(n.received_at) AS at FROM exchange_sync_notification n"
        " JOIN exchange_sync_subscription s ON s.id = n.subscription_id"
        " WHERE s.resource_id = %s AND n.kind = 'change'", [mailbox.pk])[0]["at"]
    last_notification = as_datetime(received)
    if last_notification is not None and row["last_round_at"] <= last_notification:
        return False
    pending = app.query(
        "SELECT count(*) AS n FROM exchange_sync_pendingsync p"
        " JOIN connectors_appointmentresource r ON r.appointment_id = p.appointment_id"
        " WHERE r.resource_no = %s", [mailbox.number])[0]["n"]
    return int(pending) == 0


def settle(app: App, state: GraphState, mailbox: Mailbox, *, new: int,
           timeout: float = SETTLE_TIMEOUT_S) -> None:
    """Wait for `new` more change notifications of the mailbox (answered 202 by the app),
    then until the mailbox is `quiet`: the debounced round after them has run."""
    mailbox.notified += new
    expected = mailbox.notified

    def delivered() -> bool:
        sent = change_notifications(state, mailbox)
        return len(sent) >= expected and all(n["status"] == 202 for n in sent)

    app.wait(delivered, timeout=timeout,
             what=f"{expected} change notifications of {mailbox.email} delivered")
    app.wait(lambda: quiet(app, mailbox), timeout=timeout,
             what=f"a delta round of {mailbox.email} after its notifications")


def wait_mailbox(app: App, state: GraphState, mailbox: Mailbox, count: int,
                 timeout: float = SETTLE_TIMEOUT_S) -> list[dict[str, Any]]:
    """Wait until the mailbox holds exactly `count` events; returns them."""
    def events() -> list[dict[str, Any]] | None:
        found = state.events(mailbox.email)
        return found if len(found) == count else None

    if count == 0:
        app.wait(lambda: not state.events(mailbox.email), timeout=timeout,
                 what=f"{mailbox.email} to be empty")
        return []
    return app.wait(events, timeout=timeout, what=f"{count} event(s) in {mailbox.email}")


def hook_messages(receiver: FakeServer, guid: str) -> list[dict[str, Any]]:
    """The signed webhook deliveries about the appointment, in arrival order."""
    bodies = [d.json() for d in receiver.state.deliveries]
    return [b for b in bodies if str(b["data"].get("guid", "")).lower() == guid.lower()]


def wait_hook(app: App, receiver: FakeServer, guid: str, types: list[str],
              timeout: float = SETTLE_TIMEOUT_S) -> list[dict[str, Any]]:
    """Wait until the receiver got exactly these event types about the appointment (in order);
    returns the deliveries."""
    def got() -> list[dict[str, Any]] | None:
        messages = hook_messages(receiver, guid)
        return messages if [m["type"] for m in messages] == types else None

    try:
        return app.wait(got, timeout=timeout, what=f"webhook deliveries {types} for {guid}")
    except AssertionError as exc:
        seen = [m["type"] for m in hook_messages(receiver, guid)]
        raise AssertionError(f"{exc}; got {seen}") from None
