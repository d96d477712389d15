"""The `--auth` options of a fake run alone, turned into an auth_gate.AuthPolicy.

    python -m tests.fakes.bc_rest --port 8081 --auth basic --login svc --password s3cret
    python -m tests.fakes.webhook_receiver --port 8082 --auth bearer [--audience SCOPE]

Bearer tokens are the ones tests.fakes.tokens signs (what the fake token server issues).
"""

from __future__ import annotations

import argparse

from .auth_gate import AuthPolicy


def add_auth_arguments(parser: argparse.ArgumentParser, schemes: tuple[str, ...] = (
        "none", "basic", "bearer")) -> None:
    parser.add_argument("--auth", choices=schemes, default="none",
                        help="What the fake demands (default: nothing).")
    parser.add_argument("--login", default="",
                        help="basic, ntlm, negotiate: the login it accepts (DOMAIN\\user).")
    parser.add_argument("--password", default="",
                        help="basic, ntlm, negotiate: the password it accepts.")
    parser.add_argument("--audience", default="",
                        help="bearer: the scope a token must carry (default: any).")


def policy_from_args(args: argparse.Namespace) -> AuthPolicy:
    if args.auth == "basic" and not (args.login and args.password):
        raise SystemExit("--auth basic needs --login and --password")
    return AuthPolicy(scheme=args.auth, login=args.login, password=args.password,
                      audience=args.audience)
