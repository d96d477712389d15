"""A tiny protected endpoint: `GET`/`POST /echo` behind an AuthPolicy (tests.fakes.auth_gate),
to prove each authentication method with the real clients.

The answer echoes what got through: `{"method", "user", "authorization", "body"}`, where `user`
is the Windows account the connection authenticated as (ntlm/negotiate) and `authorization`
the scheme of the request's Authorization header. `state.passed` counts requests let through.

Run alone (`--tls` serves https with a fresh test CA and prints the CA file to trust):

    python -m tests.fakes.protected --port 8090 --auth negotiate --login 'CRONUS\\alice' \\
        --password 'S3cret!' [--tls]
"""

from __future__ import annotations

import argparse
import ssl
import threading
from dataclasses import dataclass, field

from . import auth_args
from .auth_gate import AuthPolicy, authenticated_user, gate
from .server import FakeHandler, FakeServer, serve_main

SCHEMES = ("none", "basic", "ntlm", "negotiate", "bearer")


@dataclass
class ProtectedState:
    policy: AuthPolicy = field(default_factory=AuthPolicy)
    passed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class ProtectedHandler(FakeHandler):
    def _echo(self) -> None:
        state: ProtectedState = self.server.state
        if not gate(self, state.policy):
            return
        if self.recorded.path != "/echo":
            self.reply(404, {"error": {"code": "NotFound", "message": self.recorded.path}})
            return
        with state.lock:
            state.passed += 1
        self.reply(200, {
            "method": self.command,
            "user": authenticated_user(self),
            "authorization": self.headers.get("Authorization", "").partition(" ")[0],
            "body": self.body.decode(errors="replace"),
        })

    handle_GET = _echo
    handle_POST = _echo


def make(policy: AuthPolicy | None = None, *, port: int = 0,
         tls: ssl.SSLContext | None = None) -> FakeServer:
    """The endpoint (not started); `server.url + "/echo"` is what to call."""
    return FakeServer(ProtectedHandler, port=port, tls=tls,
                      state=ProtectedState(policy=policy or AuthPolicy()))


def build(args: argparse.Namespace) -> FakeServer:
    if args.auth in ("ntlm", "negotiate") and not (args.login and args.password):
        raise SystemExit(f"--auth {args.auth} needs --login and --password")
    tls = None
    if args.tls:
        from .token_server import standalone_ca

        ca = standalone_ca()
        tls = ca.server_context("protected")
        print(f"HTTP_CA_BUNDLE={ca.ca_file}", flush=True)
    server = make(auth_args.policy_from_args(args), port=args.port, tls=tls)
    print(f"protected endpoint: {server.url}/echo ({args.auth})", flush=True)
    return server


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    auth_args.add_auth_arguments(parser, SCHEMES)
    parser.add_argument("--tls", action="store_true", help="Serve https with a test CA.")


build.add_arguments = _add_arguments  # type: ignore[attr-defined]

if __name__ == "__main__":
    serve_main("protected", build)
