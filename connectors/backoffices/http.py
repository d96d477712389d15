"""The one seam every outbound back-office request passes.

Timeouts: 5 s to connect, and a total deadline from the connector (default 15 s, at most 30 s)
enforced while the body is read, so a remote that drips bytes is cut off too. TLS trusts the
system's CAs plus `HTTP_CA_BUNDLE`. Library exceptions (httpx, requests) become BackOfficeError
here and nowhere later; response bodies are kept only as redacted excerpts.

Clients: `httpx_client` is a fresh client (a new connection per use: "test connection" measures
a real connect with it). Delivery uses `pooled_httpx_client`: one client per connector per
process, kept while the settings that shape it (timeout, auth type and credentials, TLS trust)
stay the same, so its connections are kept alive and reused between sends. A changed setting
replaces it; the old one is closed once no request uses it any more.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import certifi
import httpx
import requests
from django.conf import settings

from .base import BackOfficeError
from .errors import error_for_exception
from .redact import Redactor

if TYPE_CHECKING:
    from connectors.models import Connector

CONNECT_TIMEOUT_S = 5.0
DEFAULT_TIMEOUT_S = 15.0
MAX_TIMEOUT_S = 30.0
MAX_BODY_BYTES = 5 * 1024 * 1024  # answers beyond this are cut (we only keep excerpts anyway)
USER_AGENT = "DimeConnect/0.1"
POOL_SIZE = 64  # connectors with a pooled client per process; the least recently used goes
KEEPALIVE_EXPIRY_S = 4.0  # idle pooled connections are closed after this (below most servers')


def total_timeout(connector: Connector) -> float:
    """The connector's total timeout in seconds, clamped to 1..30 (default 15)."""
    return min(max(float(connector.timeout_s or DEFAULT_TIMEOUT_S), 1.0), MAX_TIMEOUT_S)


@functools.lru_cache(maxsize=4)
def _ssl_context(extra_bundle: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    if extra_bundle:
        try:
            context.load_verify_locations(cafile=extra_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise BackOfficeError(
                f"HTTP_CA_BUNDLE ({extra_bundle}) cannot be loaded: {exc}",
                permanent=True,
                hint="Point HTTP_CA_BUNDLE at a readable PEM file of CA certificates.",
                error_class="ConfigurationError",
            ) from None
    return context


def ssl_context() -> ssl.SSLContext:
    """The TLS context for outbound calls: certifi's CAs plus HTTP_CA_BUNDLE."""
    return _ssl_context(settings.HTTP_CA_BUNDLE)


@functools.lru_cache(maxsize=4)
def _ca_bundle_file(extra_bundle: str) -> str:
    if not extra_bundle:
        return certifi.where()
    _ssl_context(extra_bundle)  # fail early, with the same message, on a bad bundle
    combined = Path(certifi.where()).read_text() + "\n" + Path(extra_bundle).read_text()
    handle = tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False)
    with handle:
        handle.write(combined)
    return handle.name


def ca_bundle_file() -> str:
    """A PEM file with the same trust as ssl_context(), for requests (zeep, NTLM, msal)."""
    return _ca_bundle_file(settings.HTTP_CA_BUNDLE)


@dataclass
class HttpAnswer:
    """A response read in full (within the deadline), independent of the HTTP library."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    duration_ms: int

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class DeadlineExceeded(Exception):
    """The total timeout ran out while the answer was still arriving."""


def read_within(chunks: Iterable[bytes], deadline: float) -> bytes:
    """Join the chunks, raising DeadlineExceeded when the monotonic deadline passes."""
    body = bytearray()
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise DeadlineExceeded
        if len(body) < MAX_BODY_BYTES:
            body.extend(chunk[: MAX_BODY_BYTES - len(body)])
    if time.monotonic() > deadline:
        raise DeadlineExceeded
    return bytes(body)


def httpx_client(connector: Connector, *, auth: httpx.Auth | None = None) -> httpx.Client:
    """An httpx client with the seam's timeouts and TLS trust; redirects are not followed."""
    return httpx.Client(
        timeout=httpx.Timeout(total_timeout(connector), connect=CONNECT_TIMEOUT_S),
        verify=ssl_context(),
        auth=auth,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )


# --- Pooled clients (delivery) ---------------------------------------------------------------


@dataclass
class _Pooled:
    client: httpx.Client
    fingerprint: str
    context: ssl.SSLContext
    users: int = 0
    retired: bool = False


_pool: OrderedDict[int, _Pooled] = OrderedDict()
_pool_lock = threading.Lock()
# Fingerprints are keyed hashes (as the token cache's), so no secret can be tested against them.
_FINGERPRINT_KEY = secrets.token_bytes(32)
_outgoing: ContextVar[list[httpx.Request] | None] = ContextVar("outgoing", default=None)


def _client_fingerprint(connector: Connector) -> str:
    """What shapes a connector's client: its timeout, auth settings and secrets, the CA bundle
    and the service account (auth type none)."""
    parts = (
        str(total_timeout(connector)), connector.auth_type, connector.login, connector.password,
        connector.tenant_id, connector.client_id, connector.client_secret, connector.token_url,
        connector.scope, settings.HTTP_CA_BUNDLE, settings.BACKOFFICE_SERVICE_LOGIN,
        settings.BACKOFFICE_SERVICE_PASSWORD,
    )
    return hmac.new(_FINGERPRINT_KEY, "\x1f".join(map(str, parts)).encode(),
                    hashlib.sha256).hexdigest()


def _note_outgoing(request: httpx.Request) -> None:
    """A pooled client's request hook (after the auth flow): recorded for `recording`."""
    sent = _outgoing.get()
    if sent is not None:
        sent.append(request)


@contextmanager
def recording() -> Iterator[list[httpx.Request]]:
    """Collect, in a list, the requests that pooled clients send in this thread (or task) as
    they went out, auth header included; the client is shared, so its hooks cannot be set."""
    sent: list[httpx.Request] = []
    token = _outgoing.set(sent)
    try:
        yield sent
    finally:
        _outgoing.reset(token)


def _checkout(connector: Connector) -> _Pooled:
    fingerprint = _client_fingerprint(connector)
    context = ssl_context()
    retired: list[_Pooled] = []
    with _pool_lock:
        entry = _pool.get(connector.pk)
        if entry is not None and (entry.fingerprint != fingerprint or entry.context is not context):
            retired.append(_pool.pop(connector.pk))
            entry = None
        if entry is None:
            client = httpx.Client(
                timeout=httpx.Timeout(total_timeout(connector), connect=CONNECT_TIMEOUT_S),
                verify=context,
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S),
                event_hooks={"request": [_note_outgoing]},
            )
            entry = _pool[connector.pk] = _Pooled(client, fingerprint, context)
            while len(_pool) > POOL_SIZE:
                retired.append(_pool.popitem(last=False)[1])
        else:
            _pool.move_to_end(connector.pk)
        entry.users += 1
        for old in retired:
            old.retired = True
        to_close = [old for old in retired if old.users == 0]
    for old in to_close:
        old.client.close()
    return entry


def _checkin(entry: _Pooled) -> None:
    with _pool_lock:
        entry.users -= 1
        close = entry.retired and entry.users == 0
    if close:
        entry.client.close()


@contextmanager
def pooled_httpx_client(connector: Connector) -> Iterator[httpx.Client]:
    """The connector's shared client in this process (thread-safe; do not change it): the
    seam's timeouts and TLS trust, no redirects, no auth (pass `auth=` per request), kept-alive
    connections. Requests through it are recorded by `recording()`.

    An unsaved connector gets a fresh client, closed afterwards.
    """
    if connector.pk is None:
        with httpx_client(connector) as client:
            client.event_hooks = {"request": [_note_outgoing], "response": []}
            yield client
        return
    entry = _checkout(connector)
    try:
        yield entry.client
    finally:
        _checkin(entry)


def close_pooled_clients() -> None:
    """Close every pooled client (tests; a client in use is closed when its request ends)."""
    with _pool_lock:
        entries = list(_pool.values())
        _pool.clear()
        for entry in entries:
            entry.retired = True
        idle = [entry for entry in entries if entry.users == 0]
    for entry in idle:
        entry.client.close()


def _forget_pool_after_fork() -> None:
    """A forked child (a django-q2 worker) must not share its parent's connections: forget
    them without closing (closing would end the parent's TLS sessions)."""
    global _pool_lock
    _pool_lock = threading.Lock()
    _pool.clear()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def httpx_request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    connector: Connector,
    redactor: Redactor,
    **kwargs: Any,
) -> HttpAnswer:
    """Send one request through `client` within the connector's total timeout.

    Returns the whole answer whatever its status; raises BackOfficeError for anything that
    kept an answer from arriving (connect, TLS, timeout, protocol errors).
    """
    started = time.monotonic()
    deadline = started + total_timeout(connector)
    try:
        with client.stream(method, url, **kwargs) as response:
            content = read_within(response.iter_bytes(), deadline)
            return HttpAnswer(
                status_code=response.status_code,
                headers=dict(response.headers),
                content=content,
                duration_ms=round((time.monotonic() - started) * 1000),
            )
    except BackOfficeError:
        raise
    except (httpx.HTTPError, DeadlineExceeded, OSError, ssl.SSLError) as exc:
        raise error_for_exception(exc, url=url, timeout_s=total_timeout(connector),
                                  redactor=redactor) from None


def requests_session(connector: Connector, *, auth: Any = None) -> requests.Session:
    """A requests session (zeep, NTLM) with the seam's TLS trust and no redirects.

    Pass `timeout=request_timeouts(connector)` and read bodies with `requests_answer`.
    """
    session = requests.Session()
    session.verify = ca_bundle_file()
    session.auth = auth
    session.max_redirects = 0
    session.headers["User-Agent"] = USER_AGENT
    return session


def request_timeouts(connector: Connector) -> tuple[float, float]:
    """(connect, read) timeouts for requests."""
    return CONNECT_TIMEOUT_S, total_timeout(connector)


def requests_call(
    session: requests.Session,
    method: str,
    url: str,
    *,
    connector: Connector,
    redactor: Redactor,
    **kwargs: Any,
) -> tuple[requests.Response, HttpAnswer]:
    """Send one request through a requests session within the connector's total timeout.

    Returns the response (its body already read) and the same as an HttpAnswer; raises
    BackOfficeError as httpx_request does.
    """
    started = time.monotonic()
    deadline = started + total_timeout(connector)
    kwargs.setdefault("timeout", request_timeouts(connector))
    kwargs.setdefault("allow_redirects", False)
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace session.verify unless verify is
    # given per request: give it, so the seam's trust (certifi + HTTP_CA_BUNDLE) always holds.
    kwargs.setdefault("verify", session.verify)
    try:
        response = session.request(method, url, stream=True, **kwargs)
        content = read_within(_iter_requests(response), deadline)
    except (requests.RequestException, DeadlineExceeded, OSError, ssl.SSLError) as exc:
        raise error_for_exception(exc, url=url, timeout_s=total_timeout(connector),
                                  redactor=redactor) from None
    response._content = content  # the body is read; later .content/.text use it
    response._content_consumed = True
    answer = HttpAnswer(
        status_code=response.status_code,
        headers=dict(response.headers),
        content=content,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return response, answer


def _iter_requests(response: requests.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_content(chunk_size=16384)
    finally:
        response.close()
