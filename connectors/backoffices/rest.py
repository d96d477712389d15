"""One HTTP exchange for the JSON clients (webhook, Business Central REST), through the seam.

`exchange` sends with the connector's auth (auth.httpx_auth), records what actually went out
(after the auth flow added its header, redacted) and turns a non-2xx answer into the classified
BackOfficeError (errors.error_for_status). Callers only ever see a 2xx answer or that error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from django.core.serializers.json import DjangoJSONEncoder

from . import auth, errors, http
from .base import BackOfficeError, RequestRecord
from .redact import Redactor, redactor_for

if TYPE_CHECKING:
    from connectors.models import Connector


@dataclass
class Exchange:
    """A 2xx answer and the request that got it (secrets redacted from both)."""

    answer: http.HttpAnswer
    request: RequestRecord
    excerpt: str


def json_bytes(data: Any) -> bytes:
    """Compact JSON; datetimes and decimals as DjangoJSONEncoder writes them.

    Signatures are computed over exactly these bytes, so they are built once and sent as is.
    """
    return json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def exchange(
    connector: Connector,
    method: str,
    url: str,
    *,
    what: str,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    redactor: Redactor | None = None,
    pooled: bool = False,
) -> Exchange:
    """Send one request with the connector's auth and timeouts; returns the 2xx answer.

    `pooled` (delivery): through the connector's pooled client, whose connections are reused;
    otherwise through a fresh client and connection (probes, "test connection").
    Raises BackOfficeError: classified by status for a non-2xx answer (its message starts with
    `what`), or from the seam when no answer arrived.
    """
    redactor = redactor or redactor_for(connector)
    connector_auth = auth.httpx_auth(connector)
    # Request hooks run after the auth flow, so what they record is the request as it went out
    # (the last one, when a bearer token was refetched after a 401).
    with http.recording() as sent:
        try:
            if pooled:
                with http.pooled_httpx_client(connector) as client:
                    answer = http.httpx_request(
                        client, method, url, connector=connector, redactor=redactor,
                        content=content, headers=headers or {}, auth=connector_auth,
                    )
            else:
                with http.httpx_client(connector, auth=connector_auth) as client:
                    client.event_hooks = {"request": [sent.append], "response": []}
                    answer = http.httpx_request(
                        client, method, url, connector=connector, redactor=redactor,
                        content=content, headers=headers or {},
                    )
        except BackOfficeError as exc:  # no answer (e.g. a timeout): what went out, if any
            if sent:
                exc.request = _record(method, url, sent[-1].headers, content, redactor)
            raise
    outgoing = sent[-1].headers if sent else httpx.Headers(headers or {})
    record = _record(method, url, outgoing, content, redactor)
    if not 200 <= answer.status_code < 300:
        error = errors.error_for_status(
            answer.status_code, answer.headers, answer.text, redactor=redactor, what=what
        )
        error.request = record
        raise error
    return Exchange(answer, record, redactor.excerpt(answer.text))


def _record(method: str, url: str, outgoing: httpx.Headers, content: bytes | None,
            redactor: Redactor) -> RequestRecord:
    return RequestRecord(
        method=method,
        url=redactor.text(url),
        headers=redactor.headers(dict(outgoing.items())),
        body=redactor.excerpt(content.decode("utf-8", errors="replace")) if content else "",
    )
