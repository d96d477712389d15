"""The one seam every outbound back-office request passes.

Timeouts: 5 s to connect, and a total deadline from the connector (default 15 s, at most 30 s)
enforced while the body is read, so a remote that drips bytes is cut off too. TLS trusts the
system's CAs plus `HTTP_CA_BUNDLE`. Library exceptions (httpx, requests) become BackOfficeError
here and nowhere later; response bodies are kept only as redacted excerpts.
"""

from __future__ import annotations

import functools
import json
import ssl
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
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
