"""The HTTP side of the fake Graph: token endpoints (inherited), `/v1.0/…`, `$batch` and
`/_control/…` (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import re
import time
from typing import Any
from urllib.parse import parse_qs

from .. import tokens
from ..server import FakeServer
from ..tls import TestCA
from ..token_server import CLIENT_ID, CLIENT_SECRET, TENANT, TokenHandler, standalone_ca
from .routes import Answer, Call, error, route
from .state import GraphState

MAX_BATCH = 20
GRAPH_CHALLENGE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
)


def _first(query: dict[str, list[str]]) -> dict[str, str]:
    return {key: values[0] for key, values in query.items() if values}


class GraphHandler(TokenHandler):
    @property
    def graph(self) -> GraphState:
        state: GraphState = self.server.state
        return state

    def handle_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def handle_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def handle_PATCH(self) -> None:  # noqa: N802
        self._route("PATCH")

    def handle_DELETE(self) -> None:  # noqa: N802
        self._route("DELETE")

    def _route(self, method: str) -> None:
        path = self.recorded.path
        if path.startswith("/v1.0/"):
            self._graph(method, path[len("/v1.0") :])
        elif path.startswith("/_control/"):
            self._control(method, path[len("/_control/") :].strip("/"))
        elif method == "GET":
            super().handle_GET()
        elif method == "POST":
            super().handle_POST()
        else:
            self.reply(404, {"error": "not_found"})

    def _answer(self, answer: Answer) -> None:
        self.reply(answer.status, answer.body, headers=answer.headers)

    # -- Graph ------------------------------------------------------------------------------
    def _claims(self) -> dict[str, Any] | None:
        header = self.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        claims = tokens.verify(token) if token else None
        with self.graph.graph_lock:
            if token:
                self.graph.seen_tokens.add(token)
            if token in self.graph.revoked_tokens or self.graph.refuse_tokens:
                return None
        if claims is None or not str(claims.get("scope", "")).endswith("/.default"):
            return None
        return claims

    def _graph(self, method: str, path: str) -> None:
        state = self.graph
        with state.graph_lock:
            state.request_count += 1
        if state.latency_s:
            time.sleep(state.latency_s)
        claims = self._claims()
        if claims is None:
            message = (
                "Access token validation failure. Invalid audience."
                if self.headers.get("Authorization")
                else "Access token is empty."
            )
            self._answer(
                error(
                    401,
                    "InvalidAuthenticationToken",
                    message,
                    {"WWW-Authenticate": GRAPH_CHALLENGE},
                )
            )
            return
        try:
            body = json.loads(self.body) if self.body.strip() else None
        except ValueError:
            self._answer(
                error(
                    400,
                    "BadRequest",
                    "Unable to read JSON request payload. Please "
                    "ensure Content-Type header is set and payload is of valid JSON "
                    "format.",
                )
            )
            return
        base = f"https://{self.headers.get('Host', '127.0.0.1')}/v1.0"
        if path == "/$batch" and method == "POST":
            self._answer(self._batch(body, base, claims))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._answer(
            route(
                state, Call(method, path, _first(self.recorded.query), headers, body, base, claims)
            )
        )

    def _batch(self, body: Any, base: str, claims: dict[str, Any]) -> Answer:
        """JSON batching (https://learn.microsoft.com/graph/json-batching): one HTTP request,
        each item answered as if it had come alone (in order; dependsOn is not needed)."""
        items = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return error(400, "BadRequest", "Invalid batch payload format.")
        if len(items) > MAX_BATCH:
            return error(
                400, "BadRequest", f"The number of batch requests exceeds the limit of {MAX_BATCH}."
            )
        ids = [str(i.get("id", "")) for i in items]
        if "" in ids or len(set(ids)) != len(ids):
            return error(400, "BadRequest", "Batch request ids must be present and unique.")
        for item in items:
            headers = {str(k).lower() for k in (item.get("headers") or {})}
            if "body" in item and "content-type" not in headers:
                return error(
                    400,
                    "BadRequest",
                    f"Content-Type header must be specified for "
                    f"batch request {item['id']} with a body.",
                )
        with self.graph.graph_lock:
            self.graph.batch_items += len(items)
        return Answer(200, {"responses": [self._batch_item(i, base, claims) for i in items]})

    def _batch_item(
        self, item: dict[str, Any], base: str, claims: dict[str, Any]
    ) -> dict[str, Any]:
        url = "/" + str(item.get("url", "")).lstrip("/")
        path, _, query = url.partition("?")
        call = Call(
            str(item.get("method", "GET")).upper(),
            path,
            _first(parse_qs(query)),
            {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()},
            item.get("body"),
            base,
            claims,
            batch_item=True,
        )
        answer = route(self.graph, call)
        headers = dict(answer.headers)
        entry: dict[str, Any] = {"id": str(item["id"]), "status": answer.status, "headers": headers}
        if answer.body is not None:
            headers["Content-Type"] = "application/json"
            entry["body"] = answer.body
        return entry

    # -- controls ---------------------------------------------------------------------------
    def _control(self, method: str, what: str) -> None:
        try:
            body = json.loads(self.body) if self.body.strip() else {}
            status, answer = self._control_answer(method, what, body)
        except KeyError as exc:
            status, answer = 404, {"error": f"not found: {exc}"}
        except (ValueError, TypeError) as exc:  # BadEvent and bad JSON included
            status, answer = 400, {"error": str(exc)}
        self.reply(status, answer)

    def _control_answer(self, method: str, what: str, body: dict[str, Any]) -> tuple[int, Any]:
        state = self.graph
        outlook = re.fullmatch(r"outlook/([^/]+)/events(?:/([^/]+))?", what)
        lifecycle = re.fullmatch(r"subscriptions/([^/]+)/(lifecycle|expire)", what)
        if method == "GET" and what == "stats":
            return 200, stats(state)
        if outlook and method == "GET":
            return 200, {"value": state.events(outlook.group(1))}
        if outlook and method == "POST":
            return 201, state.outlook_create(outlook.group(1), **body)
        if outlook and outlook.group(2) and method == "PATCH":
            return 200, state.outlook_update(outlook.group(1), outlook.group(2), **body)
        if outlook and outlook.group(2) and method == "DELETE":
            state.outlook_delete(outlook.group(1), outlook.group(2))
            return 200, {"deleted": outlook.group(2)}
        if lifecycle and lifecycle.group(2) == "expire":
            state.expire_subscription(lifecycle.group(1))
            return 200, {"expired": lifecycle.group(1)}
        if lifecycle:
            return 200, {"status": state.send_lifecycle(lifecycle.group(1), body["event"])}
        if method != "POST":
            raise KeyError(what)
        return 200, self._setting(what, body)

    def _setting(self, what: str, body: dict[str, Any]) -> Any:
        state = self.graph
        if what == "latency":
            state.latency_s = float(body.get("seconds", 0))
        elif what == "throttle":
            state.throttle(
                int(body.get("count", 1)),
                float(body.get("retry_after_s", 1)),
                int(body.get("status", 429)),
            )
        elif what == "fail":
            state.fail_item(
                str(body.get("match", "")), int(body.get("status", 500)), int(body.get("count", 1))
            )
        elif what == "expire-delta":
            state.expire_delta_tokens()
        elif what == "revoke-tokens":
            state.revoke_tokens()
        elif what == "consent":
            state.consent = bool(body.get("granted", True))
        elif what == "block":
            state.blocked_mailboxes.add(str(body["mailbox"]))
        elif what == "drop-notifications":
            state.drop_notifications = bool(body.get("drop", True))
        elif what == "reset-counters":
            state.reset_counters()
        elif what == "users":
            return {"id": state.add_user(str(body["email"]), str(body.get("display_name", "")))}
        else:
            raise KeyError(what)
        return stats(state)


def stats(state: GraphState) -> dict[str, Any]:
    with state.graph_lock:
        return {
            "request_count": state.request_count,
            "batch_items": state.batch_items,
            "prefer_missing": state.prefer_missing,
            "token_requests": state.token_requests,
            "latency_s": state.latency_s,
            "consent": state.consent,
            "notifications_sent": len(state.notifications_sent),
            "notifications_dropped": state.notifications_dropped,
            "subscriptions": [s.json() for s in state.subscriptions.values()],
            "users": {
                u["mail"]: {"id": uid, "events": len(state.mailboxes[uid])}
                for uid, u in state.users.items()
            },
        }


def make(ca: TestCA, *, port: int = 0, state: GraphState | None = None) -> FakeServer:
    """The fake Graph (and Entra token endpoints) over HTTPS with a certificate from `ca`
    (not started). Notification targets on https are trusted through the same CA."""
    state = state or GraphState()
    state.ca_file = state.ca_file or ca.ca_file
    return FakeServer(GraphHandler, port=port, tls=ca.server_context("graph"), state=state)


def settings_lines(server: FakeServer, ca_file: str) -> list[str]:
    """What DimeConnect needs to reach this fake (the Exchange settings and the environment)."""
    users = ", ".join(f"{u['mail']} ({uid})" for uid, u in server.state.users.items())
    return [
        f"HTTP_CA_BUNDLE={ca_file}",
        f"ENTRA_AUTHORITY_HOST={server.url}",
        f"GRAPH_BASE_URL={server.url}/v1.0",
        f"Tenant ID: {TENANT}",
        f"Client ID: {CLIENT_ID}",
        f"Client secret: {CLIENT_SECRET}",
        f"Mailboxes: {users or '(none)'}",
    ]


DEMO_USERS = ("anna.berg@dimeconnect.test", "ben.kowalski@dimeconnect.test")


def build(args: argparse.Namespace) -> FakeServer:
    ca = standalone_ca()
    state = GraphState(latency_s=args.latency_ms / 1000)
    for email in args.user or DEMO_USERS:
        state.add_user(email)
    server = make(ca, port=args.port, state=state)
    for line in settings_lines(server, ca.ca_file):
        print(line, flush=True)
    print(f"Controls: {server.url}/_control/stats (see tests/fakes/graph/__init__.py)", flush=True)
    return server


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="Wait this long before answering each Graph request.",
    )
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="EMAIL",
        help=f"A mailbox to create (default: {', '.join(DEMO_USERS)}).",
    )


build.add_arguments = _add_arguments  # type: ignore[attr-defined]
