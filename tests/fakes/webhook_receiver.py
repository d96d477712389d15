"""A webhook receiver: records every delivery and, given secrets, checks Standard Webhooks
signatures the way a careful receiver does.

    with webhook_receiver.make(secrets=[connector.signing_secret]) as server:
        ...POST to server.url + "/hooks/dime"...
        server.state.deliveries        # the accepted ones (server.requests has every request)

Signatures are checked with the reference `standardwebhooks` package (not with the project's
code under test): a delivery is accepted when any `v1,` signature matches any configured secret,
and its `webhook-timestamp` is within 5 minutes (the spec's replay tolerance). Otherwise the
answer is 401 with an error body. Auth (auth_gate) is checked first; faults via `server.fail`.

Run alone: python -m tests.fakes.webhook_receiver --port 8082 [--secret whsec_…]
[--auth basic --login L --password P | --auth bearer] [--status 204]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from . import auth_args
from .auth_gate import AuthPolicy, gate
from .server import FakeHandler, FakeServer, Recorded, serve_main


@dataclass
class ReceiverState:
    auth: AuthPolicy = field(default_factory=AuthPolicy)
    secrets: list[str] = field(default_factory=list)  # empty: signatures are not checked
    status: int = 200  # what an accepted delivery gets
    deliveries: list[Recorded] = field(default_factory=list)
    echo: bool = False  # print each accepted delivery (when run alone, for demos)


def verify(secrets: list[str], body: bytes, headers: dict[str, str]) -> str:
    """Why no secret verifies the delivery, or "" when one does."""
    reason = "no secret configured"
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
            return ""
        except WebhookVerificationError as exc:
            reason = str(exc)
        except ValueError:  # the reference library's answer to a malformed header
            reason = "Malformed webhook-signature header"
    return reason


def summary(recorded: Recorded) -> dict[str, Any]:
    """A delivery as a demo prints it."""
    try:
        body: Any = json.loads(recorded.body)
    except ValueError:
        body = recorded.body.decode(errors="replace")
    return {"id": recorded.header("webhook-id"), "body": body}


class WebhookReceiverHandler(FakeHandler):
    def handle_POST(self) -> None:  # noqa: N802
        state: ReceiverState = self.server.state
        if not gate(self, state.auth):
            return
        if state.secrets:
            reason = verify(state.secrets, self.body, dict(self.headers.items()))
            if reason:
                self.reply(401, {"error": {"code": "InvalidSignature", "message": reason}})
                return
        with self.server.lock:
            state.deliveries.append(self.recorded)
        if state.echo:
            print(json.dumps(summary(self.recorded)), flush=True)
        self.reply(state.status, {"received": self.headers.get("webhook-id", "")}
                   if state.status != 204 else None)


def make(*, secrets: list[str] | None = None, auth: AuthPolicy | None = None,
          status: int = 200, port: int = 0) -> FakeServer:
    """A receiver; `with` starts and stops it."""
    state = ReceiverState(auth=auth or AuthPolicy(), secrets=list(secrets or []), status=status)
    return FakeServer(WebhookReceiverHandler, port=port, state=state)


def build(args: argparse.Namespace) -> FakeServer:
    state = ReceiverState(auth=auth_args.policy_from_args(args),
                          secrets=list(args.secret or []), status=args.status, echo=True)
    return FakeServer(WebhookReceiverHandler, port=args.port, state=state)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    auth_args.add_auth_arguments(parser)
    parser.add_argument("--secret", action="append",
                        help="A whsec_… secret to verify signatures with (repeatable).")
    parser.add_argument("--status", type=int, default=200,
                        help="The status an accepted delivery gets (default 200).")


build.add_arguments = _add_arguments  # type: ignore[attr-defined]


if __name__ == "__main__":
    serve_main("webhook_receiver", build)
