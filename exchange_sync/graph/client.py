"""The Microsoft Graph client: app-only tokens, retries, paging and JSON `$batch`.

Every call goes through the back-office HTTP seam (`connectors.backoffices.http`: timeouts,
TLS trust with HTTP_CA_BUNDLE, library errors → BackOfficeError → GraphError) on one reused
httpx client, and carries `Prefer: IdType="ImmutableId", outlook.timezone="UTC"` (so event ids
survive moves between folders and times come back in UTC). Tokens come from the connectors'
token cache (msal against ENTRA_AUTHORITY_HOST), keyed by tenant, client and secret.
Specs: https://learn.microsoft.com/graph/json-batching, /graph/throttling, /graph/paging.
"""

from __future__ import annotations

import json as jsonlib
import logging
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from django.conf import settings

from connectors.backoffices import auth, http
from connectors.backoffices.base import BackOfficeError
from connectors.backoffices.errors import retry_after_seconds
from connectors.backoffices.redact import redactor_for
from connectors.models import Connector

from .errors import GraphError, graph_error

logger = logging.getLogger(__name__)

GRAPH_SCOPE_DEFAULT = "https://graph.microsoft.com/.default"
PREFER = 'IdType="ImmutableId", outlook.timezone="UTC"'
MAX_BATCH = 20
RETRY_STATUSES = frozenset({429, 503, 504})
# Graph hosts of the national clouds; a token for one is asked with that host's /.default.
CLOUD_HOSTS = frozenset(
    {
        "graph.microsoft.com",
        "graph.microsoft.us",
        "dod-graph.microsoft.us",
        "microsoftgraph.chinacloudapi.cn",
    }
)
USER_SELECT = "id,mail,userPrincipalName,displayName"


def scope_for(base_url: str) -> str:
    """The token scope for a Graph base URL: its national cloud's `/.default`, else global."""
    host = (urlsplit(base_url).hostname or "").lower()
    return f"https://{host}/.default" if host in CLOUD_HOSTS else GRAPH_SCOPE_DEFAULT


@dataclass
class GraphResponse:
    status: int
    headers: dict[str, str]  # lower-case keys
    body: Any  # parsed JSON, or None when empty / not JSON
    duration_ms: int


@dataclass
class BatchItem:
    id: str
    method: str
    url: str  # relative to GRAPH_BASE_URL, starting with "/", e.g. "/users/{id}/events"
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)  # e.g. {"If-Match": etag}


@dataclass
class BatchResult:
    id: str
    status: int
    headers: dict[str, str]
    body: Any
    error: GraphError | None  # None for 2xx; the same GraphError request() would raise


def with_prefer(headers: dict[str, str] | None) -> dict[str, str]:
    """The headers with our Prefer values added to any the caller gave (odata.maxpagesize…)."""
    merged = {k: v for k, v in (headers or {}).items() if k.lower() != "prefer"}
    theirs = [v for k, v in (headers or {}).items() if k.lower() == "prefer"]
    merged["Prefer"] = ", ".join([PREFER, *theirs])
    return merged


def _parse(content: bytes) -> Any:
    if not content.strip():
        return None
    try:
        return jsonlib.loads(content)
    except ValueError:
        return None


class GraphClient:
    """App-only Microsoft Graph calls for one tenant and application. Thread-compatible:
    use one client per thread (httpx.Client itself is thread-safe; the retry loop is too)."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        base_url: str | None = None,
        timeout_s: float = 15.0,
        max_retries: int = 4,
        max_retry_wait_s: float = 30.0,
        backoff_s: float = 0.5,
    ) -> None:
        """`max_retries`: per request (and per batch round) for 429/503/504 and connection
        errors; a Retry-After beyond `max_retry_wait_s` raises instead of sleeping.
        `backoff_s`: the first wait when Graph names none (doubling each time)."""
        self.base_url = (base_url or settings.GRAPH_BASE_URL).rstrip("/")
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        self.backoff_s = backoff_s
        # An unsaved connector carries the credentials to the token cache and the seam
        # (timeout, redactor); it never reaches the database.
        self.connector = Connector(
            name="Microsoft Graph (Exchange sync)",
            type="webhook",
            api_type="rest",
            auth_type="entra_id",
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            scope=scope_for(self.base_url),
            timeout_s=timeout_s,
        )
        self.redactor = redactor_for(self.connector)
        self._http: httpx.Client | None = None

    @classmethod
    def from_settings(cls, exchange_settings: Any) -> GraphClient:
        """A client from an object with tenant_id, client_id, client_secret (and timeout_s)."""
        return cls(
            tenant_id=exchange_settings.tenant_id,
            client_id=exchange_settings.client_id,
            client_secret=exchange_settings.client_secret,
            timeout_s=float(getattr(exchange_settings, "timeout_s", None) or 15.0),
        )

    # -- plumbing ---------------------------------------------------------------------------
    def token(self, *, force: bool = False) -> str:
        """An access token for Graph (cached until shortly before it expires); GraphError."""
        try:
            value = auth.fetch_token(self.connector, force=force).access_token
        except BackOfficeError as exc:
            raise GraphError.from_backoffice(exc) from None
        self.redactor.add(value)
        return value

    def _client(self) -> httpx.Client:
        if self._http is None:
            try:
                self._http = http.httpx_client(self.connector)
            except BackOfficeError as exc:  # a bad HTTP_CA_BUNDLE
                raise GraphError.from_backoffice(exc) from None
        return self._http

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        """The absolute URL for a relative path or a same-origin absolute URL (a nextLink or
        deltaLink); another origin raises a permanent GraphError, so a token never leaves."""
        if path.startswith(("http://", "https://")):
            theirs, ours = urlsplit(path), urlsplit(self.base_url)
            if (theirs.scheme, theirs.netloc.lower()) != (ours.scheme, ours.netloc.lower()):
                raise GraphError(
                    f"Refusing to follow a link to {theirs.scheme}://{theirs.hostname}: it is "
                    f"not Microsoft Graph at {ours.netloc}.",
                    permanent=True,
                    hint="Graph's nextLink/deltaLink must stay on GRAPH_BASE_URL's host; check "
                    "GRAPH_BASE_URL.",
                    error_class="ForeignLink",
                )
            url = path
        else:
            url = self.base_url + ("" if path.startswith("/") else "/") + path
        if params:
            # `$` kept literal (httpx would send %24top); values quoted with %20 for spaces.
            query = urlencode(params, quote_via=quote, safe="$'(),:/")
            url += ("&" if "?" in url else "?") + query
        return url

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_s * 2**attempt, self.max_retry_wait_s)

    def _wait(self, seconds: float, what: str) -> None:
        """Sleep before a retry, or raise when Graph asks for longer than we may wait."""
        if seconds > self.max_retry_wait_s:
            raise GraphError(
                f"Microsoft Graph asked to wait {seconds:g} s before retrying {what}.",
                permanent=False,
                retry_after=seconds,
                error_class="Throttled",
                code="Throttled",
                hint="Microsoft Graph is throttling this application; the work is retried later.",
            )
        logger.info("Graph: waiting %.2f s before retrying %s", seconds, what)
        time.sleep(seconds)

    def _send(self, method: str, url: str, headers: dict[str, str], json: Any) -> GraphResponse:
        content = None
        if json is not None:
            content = jsonlib.dumps(json).encode()
            headers = {**headers, "Content-Type": "application/json"}
        answer = http.httpx_request(
            self._client(),
            method,
            url,
            connector=self.connector,
            redactor=self.redactor,
            headers=headers,
            content=content,
        )
        return GraphResponse(
            answer.status_code,
            {k.lower(): v for k, v in answer.headers.items()},
            _parse(answer.content),
            answer.duration_ms,
        )

    # -- requests ---------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> GraphResponse:
        """One Graph call. `path`: relative ("/users/x/events") or a same-origin absolute URL.

        Retries 429/503/504 and connection errors (honouring Retry-After, bounded) and fetches
        a new token once on 401. Returns 2xx answers and those whose status is in `accept`;
        raises GraphError otherwise.
        """
        url = self.url(path, params)
        base_headers = {"Accept": "application/json", **with_prefer(headers)}
        attempt, refreshed, force = 0, False, False
        while True:
            sent = {**base_headers, "Authorization": f"Bearer {self.token(force=force)}"}
            force = False
            try:
                response = self._send(method, url, sent, json)
            except BackOfficeError as exc:  # no answer: connection, TLS, timeout
                if attempt >= self.max_retries:
                    raise GraphError.from_backoffice(exc) from None
                self._wait(self._backoff(attempt), f"{method} after: {exc.message}")
                attempt += 1
                continue
            status = response.status
            if status == 401 and not refreshed:
                refreshed = force = True  # a revoked or clock-skewed token: one fresh try
                continue
            if 200 <= status < 300 or status in accept:
                return response
            if status in RETRY_STATUSES and attempt < self.max_retries:
                wait = retry_after_seconds(response.headers)
                self._wait(
                    self._backoff(attempt) if wait is None else wait, f"{method} (HTTP {status})"
                )
                attempt += 1
                continue
            raise self._error(response, url)

    def _error(self, response: GraphResponse, path: str) -> GraphError:
        text = "" if response.body is None else jsonlib.dumps(response.body)
        return graph_error(
            response.status, response.headers, text, path=path, redactor=self.redactor
        )

    def pages(
        self,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Each page's JSON, following @odata.nextLink (same origin only) until a page has
        none; the last page may carry @odata.deltaLink. Raises GraphError."""
        page = self.request("GET", path, params=params, headers=headers).body or {}
        while True:
            yield page
            next_link = page.get("@odata.nextLink")
            if not next_link:
                return
            page = self.request("GET", next_link, headers=headers).body or {}

    def get_all(self, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        """The `value` items of every page (see pages())."""
        return [item for page in self.pages(path, **kwargs) for item in page.get("value", [])]

    def user(self, mailbox: str) -> dict[str, Any]:
        """The user (id, mail, userPrincipalName, displayName) of a mailbox email or id."""
        body = self.request(
            "GET", f"/users/{quote(mailbox, safe='@')}", params={"$select": USER_SELECT}
        ).body
        return body if isinstance(body, dict) else {}

    # -- $batch -----------------------------------------------------------------------------
    def batch(self, items: Sequence[BatchItem]) -> dict[str, BatchResult]:
        """Send the items as JSON `$batch` requests of at most 20 (MAX_BATCH).

        Every item gets a BatchResult (failures carry `.error`). Items answered 429/503/504
        are sent again, only those, after the largest Retry-After they got (bounded by
        max_retries and max_retry_wait_s; beyond that they keep their error). Raises
        ValueError for duplicate ids and GraphError when a whole $batch request fails.
        """
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"duplicate batch item ids: {', '.join(twice)}")
        results: dict[str, BatchResult] = {}
        for start in range(0, len(items), MAX_BATCH):
            results.update(self._batch_chunk(list(items[start : start + MAX_BATCH])))
        return results

    def _batch_chunk(self, pending: list[BatchItem]) -> dict[str, BatchResult]:
        results: dict[str, BatchResult] = {}
        attempt = 0
        while pending:
            answers = self._batch_round(pending)
            retry = [item for item in pending if answers[item.id].status in RETRY_STATUSES]
            for item in pending:
                results[item.id] = answers[item.id]
            if not retry or attempt >= self.max_retries:
                break
            waits = [retry_after_seconds(answers[i.id].headers) for i in retry]
            known = [w for w in waits if w is not None]
            wait = max(known) if known else self._backoff(attempt)
            if wait > self.max_retry_wait_s:
                for item in retry:
                    error = results[item.id].error
                    if error is not None:
                        error.retry_after = wait
                break
            self._wait(wait, f"{len(retry)} batch item(s)")
            attempt += 1
            pending = retry
        return results

    def _batch_round(self, items: list[BatchItem]) -> dict[str, BatchResult]:
        requests = []
        for item in items:
            entry: dict[str, Any] = {
                "id": item.id,
                "method": item.method.upper(),
                "url": item.url,
                "headers": with_prefer(item.headers),
            }
            if item.body is not None:
                entry["body"] = item.body
                entry["headers"].setdefault("Content-Type", "application/json")
            requests.append(entry)
        body = self.request("POST", "/$batch", json={"requests": requests}).body or {}
        answered = {str(r.get("id")): r for r in body.get("responses", []) if isinstance(r, dict)}
        return {item.id: self._batch_result(item, answered.get(item.id)) for item in items}

    def _batch_result(self, item: BatchItem, answer: dict[str, Any] | None) -> BatchResult:
        if answer is None:
            missing = GraphError(
                f"Microsoft Graph's $batch answer has no response for item {item.id}.",
                permanent=False,
                error_class="BatchIncomplete",
                hint="Microsoft Graph did not answer this item; send it again.",
            )
            return BatchResult(item.id, 0, {}, None, missing)
        status = int(answer.get("status") or 0)
        headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
        response = GraphResponse(status, headers, answer.get("body"), 0)
        error: GraphError | None = None
        if not 200 <= status < 300:
            error = self._error(response, item.url)
        return BatchResult(item.id, status, headers, response.body, error)

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
