"""Authentication checks the fake back offices apply before answering.

A fake's state holds an `AuthPolicy`; `gate(handler, policy)` returns True when the request may
proceed, and otherwise has already answered 401 (with the challenge a real server sends).

`ntlm` and `negotiate` run a real handshake with a pyspnego acceptor (MS-NLMP; SPNEGO per
RFC 4178 over HTTP per RFC 4559, NTLM inside it when there is no Kerberos). pyspnego's NTLM
acceptor reads the accounts it accepts from the file named by the environment variable
`NTLM_USER_FILE` (lines `DOMAIN:USER:PASSWORD`). The gate owns that variable in its process: the
first ntlm/negotiate check points it at a temporary file and writes the policy's account there
(`register_windows_user`). One file serves every fake in the process, so two fakes that accept
the same DOMAIN\\user must agree on its password. Like IIS and Business Central, the handshake
authenticates the connection: later requests on it pass without a header.
"""

from __future__ import annotations

import base64
import hmac
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import spnego
import spnego.channel_bindings
import spnego.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from . import tokens

if TYPE_CHECKING:
    from .server import FakeHandler

UNAUTHORIZED_ODATA = {
    "error": {
        "code": "Authentication_InvalidCredentials",
        "message": "The server has rejected the client credentials.  "
        "CorrelationId:  4c1d6a0e-0000-4000-8000-000000000000.",
    }
}


@dataclass
class AuthPolicy:
    """What a fake accepts. `scheme`: none | basic | bearer (| ntlm | negotiate, see below)."""

    scheme: str = "none"
    login: str = ""  # ntlm/negotiate: DOMAIN\user (or user)
    password: str = ""
    audience: str = ""  # bearer: the scope/audience a token must carry ("" = any)
    # ntlm/negotiate over https: the server certificate's PEM file. When set, the handshake must
    # carry its RFC 5929 tls-server-end-point channel bindings (IIS "Extended Protection").
    extended_protection_cert: str = ""


def _challenge(handler: FakeHandler, scheme: str) -> None:
    handler.reply(401, UNAUTHORIZED_ODATA, headers={"WWW-Authenticate": scheme})


def check_basic(handler: FakeHandler, policy: AuthPolicy) -> bool:
    header = handler.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            login, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            login, password = "", ""
        # bytes: compare_digest refuses non-ASCII str (RFC 7617 charset="UTF-8" passwords)
        if hmac.compare_digest(login.encode(), policy.login.encode()) and hmac.compare_digest(
            password.encode(), policy.password.encode()
        ):
            return True
    _challenge(handler, 'Basic realm="fake"')
    return False


def check_bearer(handler: FakeHandler, policy: AuthPolicy) -> bool:
    header = handler.headers.get("Authorization", "")
    claims = tokens.verify(header[7:]) if header.startswith("Bearer ") else None
    if claims is not None and (not policy.audience or claims.get("scope") == policy.audience):
        return True
    _challenge(handler, 'Bearer error="invalid_token"')
    return False


# -- Windows authentication: NTLM and Negotiate ----------------------------------------------

_users: dict[tuple[str, str], str] = {}  # (DOMAIN, USER) upper-cased -> the line in the file
_users_lock = threading.Lock()
_user_file: str = ""


def register_windows_user(login: str, password: str) -> None:
    """Make the pyspnego acceptor accept `login` (DOMAIN\\user or user) with `password`."""
    global _user_file
    domain, _, user = login.rpartition("\\")
    if ":" in domain + user + password or "\n" in domain + user + password:
        raise ValueError("NTLM_USER_FILE lines are DOMAIN:USER:PASSWORD; no ':' or newline")
    line = f"{domain}:{user}:{password}"
    with _users_lock:
        key = (domain.upper(), user.upper())
        if _users.get(key) == line and os.environ.get("NTLM_USER_FILE") == _user_file:
            return
        _users[key] = line
        if not _user_file:
            handle, _user_file = tempfile.mkstemp(prefix="fake-ntlm-users-", suffix=".txt")
            os.close(handle)
        with open(_user_file, "w") as lines:
            lines.write("".join(entry + "\n" for entry in _users.values()))
        os.environ["NTLM_USER_FILE"] = _user_file


def _windows_challenge(handler: FakeHandler, scheme: str, token: bytes | None = None) -> None:
    value = scheme if token is None else f"{scheme} {base64.b64encode(token).decode()}"
    handler.reply(401, UNAUTHORIZED_ODATA, headers={"WWW-Authenticate": value})


def _bindings(cert_file: str) -> spnego.channel_bindings.GssChannelBindings | None:
    """RFC 5929 §4.1: the certificate's hash (its signature hash; SHA-256 for MD5/SHA-1)."""
    if not cert_file:
        return None
    with open(cert_file, "rb") as pem:
        cert = x509.load_pem_x509_certificate(pem.read())
    algorithm = cert.signature_hash_algorithm
    if algorithm is None or algorithm.name in ("md5", "sha1"):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(Encoding.DER))
    return spnego.channel_bindings.GssChannelBindings(
        application_data=b"tls-server-end-point:" + digest.finalize()
    )


def _is_first_leg(token: bytes) -> bool:
    """An NTLM NEGOTIATE_MESSAGE (MS-NLMP 2.2.1.1) or a SPNEGO NegTokenInit (an RFC 2743
    InitialContextToken, tag 0x60): the client starts a new handshake."""
    return token.startswith(b"NTLMSSP\x00\x01\x00\x00\x00") or token[:1] == b"\x60"


def _check_windows(handler: FakeHandler, policy: AuthPolicy, scheme: str) -> bool:
    """One leg of the handshake; the context lives on the handler (= the connection)."""
    if getattr(handler, "windows_user", None):
        return True
    register_windows_user(policy.login, policy.password)
    prefix, _, encoded = handler.headers.get("Authorization", "").partition(" ")
    if prefix.lower() != scheme.lower() or not encoded.strip():
        _windows_challenge(handler, scheme)
        return False
    try:
        token = base64.b64decode(encoded.strip())
        context = getattr(handler, "windows_context", None)
        if context is None or _is_first_leg(token):
            context = spnego.server(protocol=scheme.lower(), channel_bindings=_bindings(
                policy.extended_protection_cert))
            handler.windows_context = context  # type: ignore[attr-defined]
        out = context.step(token)
    except (ValueError, spnego.exceptions.SpnegoError):  # a bad token or a refused login
        handler.windows_context = None  # type: ignore[attr-defined]
        _windows_challenge(handler, scheme)
        return False
    if not context.complete:
        _windows_challenge(handler, scheme, out or b"")
        return False
    handler.windows_user = context.client_principal  # type: ignore[attr-defined]
    if out:  # SPNEGO's final accept-completed token (mechListMIC), for mutual authentication
        handler.extra_headers = {"WWW-Authenticate": f"{scheme} {base64.b64encode(out).decode()}"}
    return True


def check_ntlm(handler: FakeHandler, policy: AuthPolicy) -> bool:
    return _check_windows(handler, policy, "NTLM")


def check_negotiate(handler: FakeHandler, policy: AuthPolicy) -> bool:
    return _check_windows(handler, policy, "Negotiate")


def authenticated_user(handler: FakeHandler) -> str:
    """Who the connection authenticated as (ntlm/negotiate), e.g. "CRONUS\\alice"; else ""."""
    return str(getattr(handler, "windows_user", "") or "")


CHECKS = {
    "basic": check_basic,
    "bearer": check_bearer,
    "ntlm": check_ntlm,
    "negotiate": check_negotiate,
}


def gate(handler: FakeHandler, policy: AuthPolicy | None) -> bool:
    """True when the request may proceed; otherwise the handler has answered already."""
    if policy is None or policy.scheme == "none":
        return True
    return CHECKS[policy.scheme](handler, policy)
