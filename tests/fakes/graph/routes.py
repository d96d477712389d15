"""Graph's endpoints as functions of (state, call) → answer, shared by direct calls and
`$batch` items (each item is routed exactly as the same call made directly)."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlencode

from . import events as ev
from . import notify
from .state import (
    ERROR_CODES,
    ERROR_MESSAGES,
    MAX_SUBSCRIPTION_MINUTES,
    DeltaState,
    GraphCall,
    GraphState,
    PendingPages,
    Subscription,
    render,
)

DEFAULT_PAGE = 10  # Graph's default page size for events
ACCESS_DENIED = "Access is denied. Check credentials and try again."
ACCESS_POLICY = (
    "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly "
    "AccessPolicy settings."
)
SYNC_STATE_GONE = "The sync state generation is not found."
VALIDATION_FAILED = (
    "Subscription validation request failed. Notification endpoint must "
    "respond with 200 OK to validation request."
)
EXPAND = re.compile(r"singleValueExtendedProperties\(\$filter=id eq '([^']+)'\)", re.I)
PROPERTY_FILTER = re.compile(
    r"singleValueExtendedProperties/any\(\s*(\w+):\s*\1/id eq '([^']+)'"
    r"\s+and\s+\1/value eq '([^']*)'\s*\)",
    re.I,
)


@dataclass
class Call:
    method: str
    path: str  # after /v1.0, e.g. "/users/x/events"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any
    base: str  # "https://127.0.0.1:port/v1.0"
    claims: dict[str, Any]
    batch_item: bool = False


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    """Graph's error body, innerError included."""
    inner = {
        "date": ev.now_utc().strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": str(uuid.uuid4()),
        "client-request-id": str(uuid.uuid4()),
    }
    return Answer(
        status, {"error": {"code": code, "message": message, "innerError": inner}}, headers or {}
    )


def prefer_ok(headers: dict[str, str]) -> bool:
    prefer = headers.get("prefer", "").replace(" ", "").lower()
    return 'idtype="immutableid"' in prefer and 'outlook.timezone="utc"' in prefer


def max_page_size(headers: dict[str, str]) -> int | None:
    match = re.search(r"odata\.maxpagesize=(\d+)", headers.get("prefer", ""), re.I)
    return int(match.group(1)) if match else None


def route(state: GraphState, call: Call) -> Answer:
    """Count and answer one Graph call (not a $batch envelope)."""
    record = GraphCall(
        call.method, _url(call.path, call.query), call.batch_item, prefer_ok(call.headers)
    )
    with state.graph_lock:
        state.calls.append(record)
        state.prefer_missing += 0 if record.prefer_ok else 1
    answer = _answer(state, call)
    record.status = answer.status
    return answer


def _url(path: str, query: dict[str, str]) -> str:
    return path + ("?" + urlencode(query, safe="$'(),:@ ") if query else "")


def _answer(state: GraphState, call: Call) -> Answer:
    failure = state.take_failure(_url(call.path, call.query))
    if failure is not None:
        headers = (
            {"Retry-After": f"{failure.retry_after_s:g}"}
            if failure.retry_after_s is not None
            else {}
        )
        return error(
            failure.status,
            failure.code or ERROR_CODES.get(failure.status, "Fake"),
            failure.message or ERROR_MESSAGES.get(failure.status, "Injected failure."),
            headers,
        )
    if not state.consent:
        return error(403, "ErrorAccessDenied", ACCESS_DENIED)
    for pattern, methods, handler in ROUTES:
        match = pattern.fullmatch(call.path)
        if match is None:
            continue
        if call.method not in methods:
            return error(405, "Request_BadRequest", f"The method {call.method} is not allowed.")
        args = [unquote(group) for group in match.groups()]
        try:
            if handler is subscriptions and call.method == "POST":  # calls the receiver:
                # never under the lock (it may call Graph while validating)
                return handler(state, call, *args)
            with state.graph_lock:
                return handler(state, call, *args)
        except ev.BadEvent as exc:
            return error(400, "ErrorInvalidRequest", str(exc))
    segment = call.path.strip("/").split("/")[-1]
    return error(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


# -- users --------------------------------------------------------------------------------
def _user(state: GraphState, key: str) -> tuple[dict[str, Any] | None, Answer | None]:
    user = state.find_user(key)
    if user is None:
        return None, error(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
    if state.is_blocked(user):
        return None, error(403, "ErrorAccessDenied", ACCESS_POLICY)
    return user, None


def get_user(state: GraphState, call: Call, key: str) -> Answer:
    user, refusal = _user(state, key)
    if user is None:
        return refusal or error(404, "ErrorInvalidUser", key)
    body = {"@odata.context": f"{call.base}/$metadata#users/$entity", **user}
    return Answer(200, _select(body, call.query.get("$select")))


def _select(item: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return item
    keep = {s.strip() for s in select.split(",")} | {"id", "@odata.etag", "@odata.context"}
    return {k: v for k, v in item.items() if k in keep or k.startswith("@")}


def _shown(item: dict[str, Any], call: Call) -> dict[str, Any]:
    expand = {m.lower() for m in EXPAND.findall(call.query.get("$expand", ""))}
    return _select(render(item, expand), call.query.get("$select"))


def _page(call: Call, items: list[dict[str, Any]], context: str) -> Answer:
    """`$top` (or odata.maxpagesize) items from `$skip`, with an absolute nextLink."""
    top = int(call.query.get("$top") or max_page_size(call.headers) or DEFAULT_PAGE)
    skip = int(call.query.get("$skip") or 0)
    body: dict[str, Any] = {
        "@odata.context": f"{call.base}/$metadata#{context}",
        "value": [_shown(i, call) for i in items[skip : skip + top]],
    }
    if skip + top < len(items):
        query = {**call.query, "$top": str(top), "$skip": str(skip + top)}
        body["@odata.nextLink"] = f"{call.base}{_url(call.path, query)}"
    return Answer(200, body)


# -- events -------------------------------------------------------------------------------
def list_events(state: GraphState, call: Call, key: str) -> Answer:
    user, refusal = _user(state, key)
    if user is None:
        return refusal or error(404, "ErrorInvalidUser", key)
    if call.method == "POST":
        return create_event(state, call, user)
    items = sorted(state.mailboxes[user["id"]].values(), key=lambda e: e["createdDateTime"])
    wanted = call.query.get("$filter")
    if wanted:
        match = PROPERTY_FILTER.fullmatch(wanted.strip())
        if match is None:
            return error(
                400,
                "ErrorInvalidUrlQueryFilter",
                "The fake Graph filters events only "
                "by singleValueExtendedProperties/Any(ep: ep/id eq '…' and "
                "ep/value eq '…').",
            )
        prop_id, value = match.group(2).lower(), match.group(3)
        items = [
            e
            for e in items
            if any(p["id"].lower() == prop_id and p["value"] == value for p in e.get("_props", []))
        ]
    return _page(call, items, f"users('{key}')/events")


def create_event(state: GraphState, call: Call, user: dict[str, Any]) -> Answer:
    if not isinstance(call.body, dict):
        return error(400, "ErrorInvalidRequest", "The request body must be a JSON event.")
    event, _ = state.create_event(user["id"], call.body)
    body = {
        "@odata.context": f"{call.base}/$metadata#users('{user['id']}')/events/$entity",
        **render(event),
    }
    return Answer(201, body, {"Location": f"{call.base}/users/{user['id']}/events/{event['id']}"})


def one_event(state: GraphState, call: Call, key: str, event_id: str) -> Answer:
    user, refusal = _user(state, key)
    if user is None:
        return refusal or error(404, "ErrorInvalidUser", key)
    event = state.stored(user["id"], event_id)
    if event is None:
        return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    if call.method == "GET":
        return Answer(200, _shown(event, call))
    if_match = call.headers.get("if-match")
    if if_match and if_match.strip() not in ("*", event["@odata.etag"], event["changeKey"]):
        return error(
            412,
            "ErrorIrresolvableConflict",
            "The change key passed in the request "
            "does not match the current change key of the item.",
        )
    if call.method == "DELETE":
        state.delete_event(user["id"], event_id)
        return Answer(204)
    if not isinstance(call.body, dict):
        return error(400, "ErrorInvalidRequest", "The request body must be a JSON object.")
    return Answer(200, render(state.update_event(user["id"], event_id, call.body)))


def _window(call: Call) -> tuple[datetime, datetime] | Answer:
    start, end = call.query.get("startDateTime"), call.query.get("endDateTime")
    if not start or not end:
        return error(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window "
            "specified by the query string parameters StartDateTime and EndDateTime.",
        )
    return ev.parse_instant(start), ev.parse_instant(end)


def calendar_view(state: GraphState, call: Call, key: str) -> Answer:
    user, refusal = _user(state, key)
    if user is None:
        return refusal or error(404, "ErrorInvalidUser", key)
    window = _window(call)
    if isinstance(window, Answer):
        return window
    return _page(call, state.window(user["id"], *window), f"users('{key}')/calendarView")


# -- calendarView delta (https://learn.microsoft.com/graph/delta-query-events) --------------
def calendar_delta(state: GraphState, call: Call, key: str) -> Answer:
    user, refusal = _user(state, key)
    if user is None:
        return refusal or error(404, "ErrorInvalidUser", key)
    if "$skiptoken" in call.query:
        pending = state.skip_tokens.pop(call.query["$skiptoken"], None)
        if pending is None or pending.user_id != user["id"]:
            return error(410, "SyncStateNotFound", SYNC_STATE_GONE)
        return _delta_page(state, call, pending)
    if "$deltatoken" in call.query:
        previous = state.delta_tokens.get(call.query["$deltatoken"])
        if previous is None or previous.user_id != user["id"]:
            return error(410, "SyncStateNotFound", SYNC_STATE_GONE)
        start, end, seen = previous.start, previous.end, previous.seen
    else:
        window = _window(call)
        if isinstance(window, Answer):
            return window
        (start, end), seen = window, {}
    current = state.window(user["id"], start, end)
    now_seen = {item["id"]: item["changeKey"] for item in current}
    changed = [render(i) for i in current if seen.get(i["id"]) != i["changeKey"]]
    removed = [
        {"@odata.type": "#microsoft.graph.event", "id": gone, "@removed": {"reason": "deleted"}}
        for gone in seen
        if gone not in now_seen
    ]
    token = secrets.token_urlsafe(24)
    state.delta_tokens[token] = DeltaState(user["id"], start, end, now_seen)
    size = max_page_size(call.headers) or DEFAULT_PAGE
    return _delta_page(state, call, PendingPages(changed + removed, size, token, user["id"]))


def _delta_page(state: GraphState, call: Call, pending: PendingPages) -> Answer:
    page, rest = pending.items[: pending.page_size], pending.items[pending.page_size :]
    link = f"{call.base}/users/{pending.user_id}/calendarView/delta"
    body: dict[str, Any] = {
        "@odata.context": f"{call.base}/$metadata#Collection(event)",
        "value": page,
    }
    if rest:
        skip = secrets.token_urlsafe(24)
        state.skip_tokens[skip] = PendingPages(
            rest, pending.page_size, pending.delta_token, pending.user_id
        )
        body["@odata.nextLink"] = f"{link}?$skiptoken={skip}"
    else:
        body["@odata.deltaLink"] = f"{link}?$deltatoken={pending.delta_token}"
    return Answer(200, body)


# -- subscriptions (https://learn.microsoft.com/graph/api/subscription-post-subscriptions) --
RESOURCE = re.compile(r"/?users/([^/]+)/events", re.I)


def _expiration(state: GraphState, value: Any, operation: str) -> datetime | Answer:
    try:
        when = ev.parse_instant(str(value))
    except ev.BadEvent:
        return error(400, "InvalidRequest", f"Invalid expirationDateTime: '{value}'.")
    reason = ""
    if when <= ev.now_utc():
        reason = "Subscription expiration date time is in the past."
    elif when - ev.now_utc() > timedelta(minutes=MAX_SUBSCRIPTION_MINUTES):
        reason = (
            f"Subscription expiration can only be {MAX_SUBSCRIPTION_MINUTES} minutes in the future."
        )
    if reason:
        return error(
            400,
            "ExtensionError",
            f"Operation: {operation}; Exception: [Status Code: BadRequest; Reason: {reason}]",
        )
    return when


def create_subscription(state: GraphState, call: Call) -> Answer:
    body = call.body if isinstance(call.body, dict) else {}
    change_type = str(body.get("changeType") or "")
    if not change_type or not set(change_type.split(",")) <= {"created", "updated", "deleted"}:
        return error(400, "InvalidRequest", f"Invalid 'changeType' attribute: '{change_type}'.")
    resource = str(body.get("resource") or "")
    match = RESOURCE.fullmatch(resource)
    if match is None:
        return error(
            400,
            "InvalidRequest",
            f"The resource '{resource}' is not supported by the "
            "fake Graph (use /users/{id}/events).",
        )
    with state.graph_lock:
        user, refusal = _user(state, unquote(match.group(1)))
    if user is None:
        return refusal or error(404, "ErrorInvalidUser", resource)
    urls = [str(body.get("notificationUrl") or ""), str(body.get("lifecycleNotificationUrl") or "")]
    if not urls[0].startswith(("https://", "http://")):
        return error(400, "InvalidRequest", "Invalid notification url: it must be https.")
    client_state = str(body.get("clientState") or "")
    if len(client_state) > 128:
        return error(400, "InvalidRequest", "clientState may be at most 128 characters.")
    expiration = _expiration(state, body.get("expirationDateTime"), "Create")
    if isinstance(expiration, Answer):
        return expiration
    for url in filter(None, urls):
        ok, _ = notify.validate(url, state.ca_file)
        if not ok:
            return error(400, "InvalidRequest", VALIDATION_FAILED)
    application = str(call.claims.get("client_id") or "")
    subscription = Subscription(
        str(uuid.uuid4()),
        user["id"],
        resource,
        change_type,
        urls[0],
        urls[1],
        expiration,
        client_state,
        application,
        state.tenant_of(call.claims),
    )
    with state.graph_lock:
        state.subscriptions[subscription.id] = subscription
    return Answer(
        201,
        {"@odata.context": f"{call.base}/$metadata#subscriptions/$entity", **subscription.json()},
    )


def subscriptions(state: GraphState, call: Call) -> Answer:
    if call.method == "POST":
        return create_subscription(state, call)
    live = [s.json() for s in state.subscriptions.values() if s.live()]
    return Answer(200, {"@odata.context": f"{call.base}/$metadata#subscriptions", "value": live})


def one_subscription(state: GraphState, call: Call, subscription_id: str) -> Answer:
    subscription = state.live_subscription(subscription_id)
    if subscription is None:
        return error(
            404, "ResourceNotFound", f"The object was not found: subscription '{subscription_id}'."
        )
    if call.method == "DELETE":
        del state.subscriptions[subscription_id]
        return Answer(204)
    if call.method == "PATCH":
        body = call.body if isinstance(call.body, dict) else {}
        expiration = _expiration(state, body.get("expirationDateTime"), "Update")
        if isinstance(expiration, Answer):
            return expiration
        subscription.expiration = expiration
    return Answer(
        200,
        {"@odata.context": f"{call.base}/$metadata#subscriptions/$entity", **subscription.json()},
    )


Handler = Callable[..., Answer]
ROUTES: list[tuple[re.Pattern[str], tuple[str, ...], Handler]] = [
    (re.compile(r"/users/([^/]+)", re.I), ("GET",), get_user),
    (re.compile(r"/users/([^/]+)/events", re.I), ("GET", "POST"), list_events),
    (re.compile(r"/users/([^/]+)/events/([^/]+)", re.I), ("GET", "PATCH", "DELETE"), one_event),
    (re.compile(r"/users/([^/]+)/calendarView", re.I), ("GET",), calendar_view),
    (re.compile(r"/users/([^/]+)/calendarView/delta", re.I), ("GET",), calendar_delta),
    (re.compile(r"/subscriptions", re.I), ("GET", "POST"), subscriptions),
    (re.compile(r"/subscriptions/([^/]+)", re.I), ("GET", "PATCH", "DELETE"), one_subscription),
]
