"""An OAuth2 / Microsoft Entra ID token server over HTTPS, for msal and httpx.

Endpoints, modelled on login.microsoftonline.com and RFC 6749:
- `GET  /{tenant}/v2.0/.well-known/openid-configuration`: the only thing msal reads about an
  authority when instance discovery is off (msal/authority.py, tenant discovery); its
  `token_endpoint` points back here.
- `POST /{tenant}/oauth2/v2.0/token`: client credentials, the secret in the form (msal's way)
  or in the Basic header.
- `POST /oauth2/token`: a generic RFC 6749 §4.4 endpoint, client_secret_basic (§2.3.1: id and
  secret form-urlencoded, then Basic) or client_secret_post.

State (`TokenState`): known tenants, known clients {client_id: secret}, token lifetime, a count
of token requests, how each client authenticated. Tokens are `tests.fakes.tokens.issue(...)`
with the claims client_id, scope and tid, so the resource fakes (auth_gate.check_bearer) accept
them. Errors look like Entra's real ones (shared fixtures aadsts-*.json): unknown tenant → 400
invalid_request AADSTS90002 (discovery: 400 invalid_tenant); unknown client → 400
unauthorized_client AADSTS700016; wrong secret → 401 invalid_client AADSTS7000215. The generic
endpoint answers RFC 6749 §5.2 errors: 401 invalid_client with `WWW-Authenticate: Basic`.
Faults: `server.fail(...)` (tests.fakes.server.Faults; `path="/token"` spares the discovery).

Run alone (prints the CA file to trust as HTTP_CA_BUNDLE and the ENTRA_AUTHORITY_HOST to use):

    python -m tests.fakes.token_server --port 8443 [--tenant T] [--client ID:SECRET] [--lifetime S]
"""

from __future__ import annotations

import argparse
import base64
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from . import tokens
from .server import FakeHandler, FakeServer, serve_main
from .tls import TestCA

TENANT = "5f8b3c2a-6d1e-4b7a-9c0d-2e4f6a8b0c1d"
CLIENT_ID = "0b9f6d2e-3a4c-4e8b-9f1a-7c5d3e2b1a09"
CLIENT_SECRET = "fQ8~fake.Secret-0123456789abcdefABCDEF"  # shaped like an Entra secret value


@dataclass
class TokenState:
    tenants: set[str] = field(default_factory=lambda: {TENANT})
    clients: dict[str, str] = field(default_factory=lambda: {CLIENT_ID: CLIENT_SECRET})
    lifetime_s: int = 3600
    # What answers claim as expires_in (None: lifetime_s); a test can hand out tokens that die
    # before the client expects, as a revoked or clock-skewed token would.
    expires_in_s: int | None = None
    token_requests: int = 0  # every POST to a token endpoint, good or bad
    client_auth: list[str] = field(default_factory=list)  # per token request: basic|post|none
    issued: list[dict[str, Any]] = field(default_factory=list)  # claims of each token issued
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def entra_error(error: str, code: int, description: str) -> dict[str, Any]:
    """An Entra ID error body, the shape of fixtures/aadsts-*.json."""
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\n"
        f"Correlation ID: {correlation}\r\nTimestamp: {now}",
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


def tenant_not_found(tenant: str, error: str = "invalid_request") -> dict[str, Any]:
    return entra_error(error, 90002, (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud. Check with your subscription administrator, this "
        "may happen if there are no active subscriptions for the tenant."))


def client_not_found(client_id: str, tenant: str) -> dict[str, Any]:
    return entra_error("unauthorized_client", 700016, (
        f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
        "This can happen if the application has not been installed by the administrator of "
        "the tenant or consented to by any user in the tenant. You may have sent your "
        "authentication request to the wrong tenant."))


def invalid_secret(client_id: str) -> dict[str, Any]:
    return entra_error("invalid_client", 7000215, (
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        f"client secret value, not the client secret ID, for a secret added to app "
        f"'{client_id}'."))


class TokenHandler(FakeHandler):
    @property
    def state(self) -> TokenState:
        return self.server.state  # type: ignore[no-any-return]

    def _base(self) -> str:
        return f"https://{self.headers.get('Host', '127.0.0.1')}"

    def handle_GET(self) -> None:  # noqa: N802
        parts = self.recorded.path.strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            self._openid_configuration(parts[0])
        else:
            self.reply(404, {"error": "not_found"})

    def handle_POST(self) -> None:  # noqa: N802
        parts = self.recorded.path.strip("/").split("/")
        if parts == ["oauth2", "token"]:
            self._token(tenant="", generic=True)
        elif len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            self._token(tenant=parts[0], generic=False)
        else:
            self.reply(404, {"error": "not_found"})

    def _openid_configuration(self, tenant: str) -> None:
        if tenant not in self.state.tenants:
            self.reply(400, tenant_not_found(tenant, "invalid_tenant"))
            return
        base = f"{self._base()}/{tenant}"
        self.reply(200, {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{self._base()}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        })

    def _client_credentials(self, form: dict[str, str]) -> tuple[str, str, str] | None:
        """(method, client_id, secret); None after answering when more than one is used."""
        header = self.headers.get("Authorization", "")
        in_body = "client_secret" in form
        if header.startswith("Basic ") and in_body:  # RFC 6749 §2.3: one method only
            self.reply(400, {"error": "invalid_request", "error_description":
                             "The client used more than one authentication method."})
            return None
        if header.startswith("Basic "):
            try:
                pair = base64.b64decode(header[6:]).decode()
            except (ValueError, UnicodeDecodeError):
                pair = ":"
            client_id, _, secret = pair.partition(":")
            return "basic", unquote_plus(client_id), unquote_plus(secret)
        if in_body:
            return "post", form.get("client_id", ""), form["client_secret"]
        return "none", form.get("client_id", ""), ""

    def _token(self, *, tenant: str, generic: bool) -> None:
        form = {k: v[0] for k, v in parse_qs(self.body.decode(errors="replace")).items()}
        credentials = self._client_credentials(form)
        with self.state.lock:
            self.state.token_requests += 1
            self.state.client_auth.append(credentials[0] if credentials else "both")
        if credentials is None:
            return
        method, client_id, secret = credentials
        refusal = (self._generic_refusal(form, method, client_id, secret) if generic
                   else self._entra_refusal(form, tenant, client_id, secret))
        if refusal is not None:
            status, body, headers = refusal
            self.reply(status, body, headers=headers)
            return
        claims = {"client_id": client_id, "scope": form.get("scope", ""), "tid": tenant}
        with self.state.lock:
            self.state.issued.append(claims)
        lifetime = self.state.lifetime_s
        expires_in = lifetime if self.state.expires_in_s is None else self.state.expires_in_s
        answer: dict[str, Any] = {"token_type": "Bearer", "expires_in": expires_in,
                                  "access_token": tokens.issue(claims, lifetime_s=lifetime)}
        if not generic:
            answer["ext_expires_in"] = expires_in
        self.reply(200, answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _entra_refusal(self, form: dict[str, str], tenant: str, client_id: str,
                       secret: str) -> tuple[int, Any, dict[str, str]] | None:
        if tenant not in self.state.tenants:
            return 400, tenant_not_found(tenant), {}
        if form.get("grant_type") != "client_credentials":
            return 400, entra_error("unsupported_grant_type", 70003,
                                    "The app requested an unsupported grant type."), {}
        if client_id not in self.state.clients:
            return 400, client_not_found(client_id, tenant), {}
        if secret != self.state.clients[client_id]:
            return 401, invalid_secret(client_id), {}
        if not form.get("scope"):
            return 400, entra_error("invalid_request", 90014,
                                    "The required field 'scope' is missing from the credential."
                                    " Ensure that you have all the necessary parameters for the"
                                    " login request."), {}
        return None

    def _generic_refusal(self, form: dict[str, str], method: str, client_id: str,
                         secret: str) -> tuple[int, Any, dict[str, str]] | None:
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}, {}
        if method == "none" or self.state.clients.get(client_id) != secret:
            return 401, {"error": "invalid_client",
                         "error_description": "Client authentication failed."}, {
                "WWW-Authenticate": 'Basic realm="fake-oauth2"'}
        return None


def make(ca: TestCA, *, port: int = 0, state: TokenState | None = None) -> FakeServer:
    """The token server over HTTPS with a certificate from `ca` (not started)."""
    return FakeServer(TokenHandler, port=port, tls=ca.server_context("token-server"),
                      state=state or TokenState())


def standalone_ca() -> TestCA:
    """A CA in a new temporary directory, for a fake run alone."""
    return TestCA.create(Path(tempfile.mkdtemp(prefix="dimeconnect-fake-ca-")))


def build(args: argparse.Namespace) -> FakeServer:
    clients = dict(client.split(":", 1) for client in args.client) or {CLIENT_ID: CLIENT_SECRET}
    state = TokenState(tenants=set(args.tenant or [TENANT]), clients=clients,
                       lifetime_s=args.lifetime)
    ca = standalone_ca()
    server = make(ca, port=args.port, state=state)
    tenants, client_ids = ", ".join(sorted(state.tenants)), ", ".join(clients)
    print(f"HTTP_CA_BUNDLE={ca.ca_file}", flush=True)
    print(f"ENTRA_AUTHORITY_HOST={server.url}  (tenants: {tenants})", flush=True)
    print(f"OAuth2 token URL: {server.url}/oauth2/token  (clients: {client_ids})", flush=True)
    return server


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", action="append", help=f"A known tenant (default {TENANT}).")
    parser.add_argument("--client", action="append", default=[], metavar="ID:SECRET",
                        help="A known client (default the test client).")
    parser.add_argument("--lifetime", type=int, default=3600, help="Token lifetime in seconds.")


build.add_arguments = _add_arguments  # type: ignore[attr-defined]

if __name__ == "__main__":
    serve_main("token_server", build)
