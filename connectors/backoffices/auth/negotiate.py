"""Windows authentication for requests (zeep): HTTP Negotiate (RFC 4559) carrying SPNEGO
(RFC 4178) through pyspnego — Kerberos where the machine has it (python-gssapi and a KDC),
otherwise NTLM inside SPNEGO (MS-SPNG, MS-NLMP)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import requests
import spnego
import spnego.channel_bindings
import spnego.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from requests.auth import AuthBase

from ..base import BackOfficeError


def release(response: requests.Response) -> None:
    """Read the body and hand the connection back, so that the next leg reuses it."""
    _ = response.content
    response.raw.release_conn()


def negotiate_token(response: requests.Response) -> bytes | None:
    """The token of `WWW-Authenticate: Negotiate …`: b"" when offered bare, None when absent."""
    for challenge in response.headers.get("www-authenticate", "").split(","):
        scheme, _, token = challenge.strip().partition(" ")
        if scheme.lower() == "negotiate":
            try:
                return base64.b64decode(token.strip()) if token.strip() else b""
            except ValueError:
                return b""
    return None


def channel_bindings(response: requests.Response) -> Any:
    """RFC 5929 §4.1 tls-server-end-point bindings over https, for servers with Extended
    Protection; None over plain http."""
    try:
        der = response.raw._fp.fp.raw._sock.getpeercert(True)  # where requests-ntlm reads it
        algorithm = x509.load_der_x509_certificate(der).signature_hash_algorithm
    except Exception:  # plain http, or a certificate we cannot hash: no bindings
        return None
    if algorithm is None or algorithm.name in ("md5", "sha1"):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(der)
    return spnego.channel_bindings.GssChannelBindings(
        application_data=b"tls-server-end-point:" + digest.finalize()
    )


class NegotiateAuth(AuthBase):
    """Answers a `WWW-Authenticate: Negotiate` challenge with a SPNEGO handshake.

    The handshake authenticates the TCP connection, so every leg goes out on the connection that
    got the challenge, as requests-ntlm does for NTLM. A final token on the success answer is
    checked (mutual authentication, RFC 4559 §5). A refused login leaves the server's 401.
    """

    MAX_LEGS = 4

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Connection"] = "Keep-Alive"
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401 or negotiate_token(response) is None:
            return response
        if "Authorization" in response.request.headers:  # our own last leg was refused
            return response
        host = urlsplit(response.url).hostname or ""
        try:
            return self._handshake(response, host, kwargs)
        except spnego.exceptions.SpnegoError as exc:
            raise BackOfficeError(
                f"Windows authentication with {host} failed: {exc.message}",
                permanent=True,
                hint="Check the login (DOMAIN\\user) and password, and that the server "
                "offers Negotiate (Kerberos or NTLM).",
                error_class="AuthError",
            ) from None

    def _handshake(
        self, response: requests.Response, host: str, kwargs: dict[str, Any]
    ) -> requests.Response:
        context = spnego.client(
            self.username, self.password, hostname=host, service="HTTP",
            protocol="negotiate", channel_bindings=channel_bindings(response),
        )
        out_token = context.step() or b""
        history = [response]
        for _ in range(self.MAX_LEGS):
            release(response)
            request = response.request.copy()
            request.headers["Authorization"] = "Negotiate " + base64.b64encode(out_token).decode()
            # the adapter, not the session: the same pooled connection, and no hooks again
            response = response.connection.send(request, **kwargs)
            in_token = negotiate_token(response)
            if response.status_code != 401:
                if in_token and not context.complete:
                    context.step(in_token)  # verifies the server (mechListMIC / Kerberos AP-REP)
                break
            if not in_token:  # a bare challenge again: the credentials were refused
                break
            history.append(response)
            out_token = context.step(in_token) or b""
        response.history = history + list(response.history)
        return response
