"""What the fake Graph holds: users, their events, subscriptions, delta sync states, faults
and counters. Thread-safe: every change happens under `graph_lock`."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..token_server import TENANT, TokenState
from . import events as ev
from . import notify

MAX_SUBSCRIPTION_MINUTES = 4230  # Outlook resources (DESIGN.md)


@dataclass
class Subscription:
    id: str
    user_id: str
    resource: str
    change_type: str
    notification_url: str
    lifecycle_url: str
    expiration: datetime
    client_state: str
    application_id: str
    tenant_id: str

    def live(self) -> bool:
        return self.expiration > ev.now_utc()

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": self.change_type,
            "clientState": self.client_state or None,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url or None,
            "expirationDateTime": ev.stamp(self.expiration),
            "creatorId": self.application_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


@dataclass
class DeltaState:
    """A delta round's sync state: the window and what the client has seen (id → changeKey)."""

    user_id: str
    start: datetime
    end: datetime
    seen: dict[str, str]


@dataclass
class PendingPages:
    items: list[dict[str, Any]]
    page_size: int
    delta_token: str
    user_id: str


@dataclass
class Failure:
    """The next `count` requests or batch items whose URL contains `match` answer `status`."""

    match: str  # "" = any
    status: int
    count: int
    retry_after_s: float | None = None
    code: str = ""
    message: str = ""


@dataclass
class GraphCall:
    """One Graph call as the fake saw it (a $batch envelope and each of its items)."""

    method: str
    url: str  # path and query after /v1.0
    batch_item: bool
    prefer_ok: bool
    status: int = 0


ERROR_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "ErrorAccessDenied",
    404: "ErrorItemNotFound",
    409: "ErrorIrresolvableConflict",
    412: "ErrorIrresolvableConflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
ERROR_MESSAGES = {
    429: "Application is over its MailboxConcurrency limit.",
    503: "The service is temporarily unavailable. Please retry later.",
    504: "The gateway timed out.",
}


@dataclass
class GraphState(TokenState):
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → user JSON
    mailboxes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # id → events
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    delta_tokens: dict[str, DeltaState] = field(default_factory=dict)
    skip_tokens: dict[str, PendingPages] = field(default_factory=dict)
    # Controls
    consent: bool = True  # False: every Graph call 403 ErrorAccessDenied
    blocked_mailboxes: set[str] = field(default_factory=set)  # emails or ids: RAOP 403
    latency_s: float = 0.0
    drop_notifications: bool = False
    failures: list[Failure] = field(default_factory=list)
    revoked_tokens: set[str] = field(default_factory=set)
    refuse_tokens: bool = False  # every token 401 (a tenant or audience mismatch)
    ca_file: str = ""  # trusted for https notification targets
    # Counters and records
    request_count: int = 0  # /v1.0 HTTP requests ($batch = 1), token calls excluded
    batch_items: int = 0
    prefer_missing: int = 0  # calls (and batch items) without both Prefer values
    calls: list[GraphCall] = field(default_factory=list)
    seen_tokens: set[str] = field(default_factory=set)
    notifications_sent: list[dict[str, Any]] = field(default_factory=list)
    notifications_dropped: int = 0
    graph_lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- users ------------------------------------------------------------------------------
    def add_user(self, email: str, display_name: str = "") -> str:
        """A user with an Exchange Online mailbox; returns its id (a GUID string)."""
        with self.graph_lock:
            existing = self.find_user(email)
            if existing is not None:
                return str(existing["id"])
            user_id = str(uuid.uuid4())
            name = display_name or email.split("@")[0].replace(".", " ").title()
            self.users[user_id] = {
                "id": user_id,
                "mail": email,
                "userPrincipalName": email,
                "displayName": name,
                "businessPhones": [],
                "givenName": name.split()[0],
                "surname": name.split()[-1],
                "jobTitle": None,
                "officeLocation": None,
                "preferredLanguage": "en-US",
                "mobilePhone": None,
            }
            self.mailboxes[user_id] = {}
            return user_id

    def find_user(self, key: str) -> dict[str, Any] | None:
        """By id or (case-insensitive) email / UPN."""
        lowered = key.lower()
        with self.graph_lock:
            for user in self.users.values():
                if lowered in (user["id"], user["mail"].lower(), user["userPrincipalName"].lower()):
                    return user
        return None

    def is_blocked(self, user: dict[str, Any]) -> bool:
        blocked = {b.lower() for b in self.blocked_mailboxes}
        return bool(blocked & {user["id"], user["mail"].lower()})

    def _user_id(self, mailbox: str) -> str:
        user = self.find_user(mailbox)
        if user is None:
            raise KeyError(f"no such mailbox in the fake: {mailbox}")
        return str(user["id"])

    # -- events -----------------------------------------------------------------------------
    def events(self, mailbox: str) -> list[dict[str, Any]]:
        """The mailbox's current events as Graph shows them (series masters not expanded)."""
        with self.graph_lock:
            stored = self.mailboxes[self._user_id(mailbox)].values()
            return [render(event) for event in sorted(stored, key=lambda e: e["createdDateTime"])]

    def stored(self, user_id: str, event_id: str) -> dict[str, Any] | None:
        return self.mailboxes.get(user_id, {}).get(event_id)

    def window(self, user_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Single instances and occurrences overlapping [start, end), sorted by start."""
        found = []
        for event in self.mailboxes.get(user_id, {}).values():
            candidates = ev.occurrences(event, end) if event.get("recurrence") else [event]
            for item in candidates:
                first, last = ev.span(item)
                if first < end and (last > start or (first == last and first >= start)):
                    found.append(item)
        return sorted(found, key=lambda e: (e["start"]["dateTime"], e["id"]))

    def create_event(self, user_id: str, fields: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """(event, created): a transactionId already used in the mailbox returns that event."""
        with self.graph_lock:
            box = self.mailboxes[user_id]
            transaction = fields.get("transactionId")
            if transaction:
                for event in box.values():
                    if event.get("transactionId") == transaction:
                        return event, False
            user = self.users[user_id]
            event = ev.new_event(fields, {"name": user["displayName"], "address": user["mail"]})
            event["_props"] = []
            merge_properties(event, fields.get("singleValueExtendedProperties"))
            box[event["id"]] = event
            self._notify(user_id, "created", event)
            return event, True

    def update_event(self, user_id: str, event_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self.graph_lock:
            event = self.mailboxes[user_id][event_id]
            ev.check_fields(fields)
            ev.apply_fields(event, fields)
            merge_properties(event, fields.get("singleValueExtendedProperties"))
            self._notify(user_id, "updated", event)
            return event

    def delete_event(self, user_id: str, event_id: str) -> None:
        with self.graph_lock:
            event = self.mailboxes[user_id].pop(event_id)
            self._notify(user_id, "deleted", event)

    # -- the Outlook side (the mailbox owner, bypassing the client) ---------------------------
    def outlook_create(self, mailbox: str, **fields: Any) -> dict[str, Any]:
        """Create an event as the owner would in Outlook (defaults: a one-hour busy event an
        hour from now); notifications and delta see it. Returns the event as Graph shows it."""
        start = (ev.now_utc() + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        fields.setdefault("subject", "Created in Outlook")
        fields.setdefault("start", ev.graph_time(start))
        fields.setdefault("end", ev.graph_time(start + timedelta(hours=1)))
        event, _ = self.create_event(self._user_id(mailbox), fields)
        return render(event)

    def outlook_update(self, mailbox: str, event_id: str, **fields: Any) -> dict[str, Any]:
        return render(self.update_event(self._user_id(mailbox), event_id, fields))

    def outlook_delete(self, mailbox: str, event_id: str) -> None:
        self.delete_event(self._user_id(mailbox), event_id)

    # -- faults -----------------------------------------------------------------------------
    def throttle(self, count: int, retry_after_s: float = 1, status: int = 429) -> None:
        """The next `count` Graph requests or batch items answer `status` (429 or 503) with
        Retry-After and Graph's TooManyRequests / ServiceUnavailable body."""
        self.fail_item("", status=status, count=count, retry_after_s=retry_after_s)

    def fail_item(
        self,
        match: str,
        status: int = 500,
        count: int = 1,
        *,
        retry_after_s: float | None = None,
        code: str = "",
        message: str = "",
    ) -> None:
        """The next `count` requests or batch items whose URL contains `match` answer
        `status` with a Graph error body (code/message default per status)."""
        with self.graph_lock:
            self.failures.append(Failure(match, status, count, retry_after_s, code, message))

    def take_failure(self, url: str) -> Failure | None:
        with self.graph_lock:
            for failure in self.failures:
                if failure.count > 0 and failure.match.lower() in url.lower():
                    failure.count -= 1
                    if failure.count == 0:
                        self.failures.remove(failure)
                    return failure
        return None

    def expire_delta_tokens(self) -> None:
        """Every existing deltaLink and nextLink of a delta round now answers 410."""
        with self.graph_lock:
            self.delta_tokens.clear()
            self.skip_tokens.clear()

    def revoke_tokens(self) -> None:
        """Access tokens seen so far are refused (401), as after a revocation."""
        with self.graph_lock:
            self.revoked_tokens |= self.seen_tokens
        with self.lock:  # tokens are claims + exp: a longer life makes the next ones differ
            self.lifetime_s += 1

    def reset_counters(self) -> None:
        with self.graph_lock:
            self.request_count = self.batch_items = self.prefer_missing = 0
            self.notifications_dropped = 0
            self.calls.clear()
            self.notifications_sent.clear()
        with self.lock:
            self.token_requests = 0

    # -- subscriptions and notifications ---------------------------------------------------
    def expire_subscription(self, subscription_id: str) -> None:
        """The subscription expires now: no more notifications; Graph then forgets it."""
        with self.graph_lock:
            self.subscriptions[subscription_id].expiration = ev.now_utc() - timedelta(seconds=1)

    def live_subscription(self, subscription_id: str) -> Subscription | None:
        subscription = self.subscriptions.get(subscription_id)
        return subscription if subscription is not None and subscription.live() else None

    def send_lifecycle(self, subscription_id: str, lifecycle_event: str) -> int | str | None:
        """POST a lifecycle notification (reauthorizationRequired | subscriptionRemoved |
        missed) to the subscription's lifecycle URL, now; subscriptionRemoved also deletes
        the subscription. Returns the receiver's status (None: no lifecycle URL)."""
        with self.graph_lock:
            subscription = self.subscriptions[subscription_id]
            if lifecycle_event == "subscriptionRemoved":
                del self.subscriptions[subscription_id]
        if not subscription.lifecycle_url:
            return None
        payload = {
            "value": [
                {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": ev.stamp(subscription.expiration),
                    "tenantId": subscription.tenant_id,
                    "clientState": subscription.client_state or None,
                    "lifecycleEvent": lifecycle_event,
                }
            ]
        }
        status = notify.post_json(subscription.lifecycle_url, payload, self.ca_file)
        self._record(
            {
                "kind": "lifecycle",
                "subscription_id": subscription.id,
                "lifecycle_event": lifecycle_event,
                "url": subscription.lifecycle_url,
                "payload": payload,
                "status": status,
            }
        )
        return status

    def _record(self, delivery: dict[str, Any]) -> None:
        with self.graph_lock:
            self.notifications_sent.append(delivery)

    def _notify(self, user_id: str, change_type: str, event: dict[str, Any]) -> None:
        """Post a change notification to each live subscription of the mailbox (background)."""
        targets = [
            s
            for s in self.subscriptions.values()
            if s.user_id == user_id and s.live() and change_type in s.change_type.split(",")
        ]
        if not targets:
            return
        if self.drop_notifications:
            self.notifications_dropped += len(targets)
            return
        for subscription in targets:
            resource = f"Users/{user_id}/Events/{event['id']}"
            payload = {
                "value": [
                    {
                        "subscriptionId": subscription.id,
                        "subscriptionExpirationDateTime": ev.stamp(subscription.expiration),
                        "changeType": change_type,
                        "resource": resource,
                        "resourceData": {
                            "@odata.type": "#Microsoft.Graph.Event",
                            "@odata.id": resource,
                            "@odata.etag": event.get("@odata.etag"),
                            "id": event["id"],
                        },
                        "clientState": subscription.client_state or None,
                        "tenantId": subscription.tenant_id,
                    }
                ]
            }
            threading.Thread(
                target=self._deliver,
                args=(subscription, change_type, event["id"], payload),
                daemon=True,
            ).start()

    def _deliver(
        self, subscription: Subscription, change_type: str, event_id: str, payload: dict[str, Any]
    ) -> None:
        status = notify.post_json(subscription.notification_url, payload, self.ca_file)
        self._record(
            {
                "kind": "change",
                "subscription_id": subscription.id,
                "change_type": change_type,
                "event_id": event_id,
                "url": subscription.notification_url,
                "payload": payload,
                "status": status,
            }
        )

    def wait_notifications(
        self,
        count: int,
        *,
        timeout_s: float = 5.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Poll until `count` deliveries (matching `where`) were made; returns them all.
        Raises AssertionError on timeout (a test helper)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.graph_lock:
                found = [n for n in self.notifications_sent if where is None or where(n)]
            if len(found) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert len(found) >= count, f"{len(found)} of {count} notifications after {timeout_s} s"
        return found

    def tenant_of(self, claims: dict[str, Any]) -> str:
        return str(claims.get("tid") or next(iter(self.tenants), TENANT))


def render(event: dict[str, Any], expand: set[str] | None = None) -> dict[str, Any]:
    """The event as Graph answers: internal keys dropped; extended properties only when a
    `$expand=singleValueExtendedProperties($filter=id eq '…')` named them."""
    shown = {k: copy.deepcopy(v) for k, v in event.items() if not k.startswith("_")}
    if expand:
        props = [copy.deepcopy(p) for p in event.get("_props", []) if p["id"].lower() in expand]
        if props:
            shown["singleValueExtendedProperties"] = props
    return shown


def merge_properties(event: dict[str, Any], props: Any) -> None:
    """singleValueExtendedProperties: set by id (case-insensitive), kept across PATCHes."""
    if not props:
        return
    if not isinstance(props, list) or not all(
        isinstance(p, dict) and isinstance(p.get("id"), str) and "value" in p for p in props
    ):
        raise ev.BadEvent("singleValueExtendedProperties must be a list of {id, value}.")
    stored = event.setdefault("_props", [])
    for prop in props:
        stored[:] = [p for p in stored if p["id"].lower() != prop["id"].lower()]
        stored.append({"id": prop["id"], "value": str(prop["value"])})
