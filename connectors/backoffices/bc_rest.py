"""Business Central REST client: staging records POSTed to the Dime.Scheduler API page.

The connector's URI is the entity set, e.g.
`https://api.businesscentral.dynamics.com/v2.0/<tenant>/<env>/api/dimeSoftware/dimeScheduler/
v1.0/companies(<id>)/appointments` (on-prem: `https://<server>:<port>/<instance>/api/…`).

Probe (side-effect free): `GET <entity set>?$top=1`. The API's `$metadata` (at the service
root, the URI up to `companies(…)`) is only asked when that GET cannot say enough:
- 405 (a page that allows inserts but not reads): the probe passes when `$metadata` lists the
  entity set, since a POST can then reach it;
- 404: the probe fails either way, and `$metadata` tells which part of the URI is wrong (the API
  answers and lists the entity set: the company; it answers without it: the entity set name; it
  does not answer: the API path, or the extension is not installed).
Falling back to `$metadata` on a 404 and passing would be a false green: sends would 404 too.
Errors carry Business Central's own code and message (`{"error": {"code", "message"}}`).
"""

from __future__ import annotations

import copy
import re
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from . import auth, http, payloads, rest
from .base import AppointmentChange, BackOfficeClient, BackOfficeError, ProbeResult, SendResult

if TYPE_CHECKING:
    from connectors.models import Connector

WHAT = "Business Central"
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
API_PATH_EXAMPLE = "…/api/dimeSoftware/dimeScheduler/v1.0/companies(<company id>)/appointments"


def with_top(uri: str, top: int = 1) -> str:
    """The URI with `$top` added; written by hand because httpx would encode `$` as %24 and
    drop a query the URI already has (an on-prem `?tenant=…`)."""
    parts = urlsplit(uri)
    query = f"{parts.query}&$top={top}" if parts.query else f"$top={top}"
    return urlunsplit(parts._replace(query=query))


def metadata_url(uri: str) -> str:
    """The `$metadata` of the API the entity set URI belongs to (the query is kept)."""
    parts = urlsplit(uri)
    match = re.search(r"/companies\(", parts.path, re.IGNORECASE)
    root = parts.path[: match.start() + 1] if match else parts.path.rsplit("/", 1)[0] + "/"
    return urlunsplit(parts._replace(path=root + "$metadata"))


def entity_set_name(uri: str) -> str:
    return urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1]


def lists_entity_set(csdl: str, name: str) -> bool:
    """Whether the CSDL document declares an entity set called `name`."""
    pattern = rf'<(?:\w+:)?EntitySet\b[^>]*\bName="{re.escape(name)}"'
    return re.search(pattern, csdl) is not None


class BcRestClient(BackOfficeClient):
    """(bc_onprem | bc_online, rest): the camelCase staging record, one POST per change."""

    def send(self, change: AppointmentChange) -> SendResult:
        """POST the staging record through the connector's pooled client; returns the 2xx
        answer, raises BackOfficeError otherwise."""
        content = rest.json_bytes(payloads.bc_staging_record(change))
        done = self._exchange("POST", self.connector.uri, content=content, pooled=True)
        return SendResult(
            status_code=done.answer.status_code,
            response_excerpt=done.excerpt,
            duration_ms=done.answer.duration_ms,
            request=done.request,
        )

    def probe(self) -> ProbeResult:
        """GET the entity set with `$top=1` (see the module docstring for `$metadata`)."""
        deadline = time.monotonic() + http.total_timeout(self.connector)
        uri = self.connector.uri
        try:
            done = self._exchange("GET", with_top(uri))
        except BackOfficeError as exc:
            if exc.status_code == 405:
                return self._probe_metadata(exc, deadline)
            if exc.status_code == 404:
                exc.hint = self._diagnose_not_found(deadline) or exc.hint
            raise
        try:
            rows = done.answer.json()["value"]
        except (ValueError, KeyError, TypeError):
            rows = None
        if not isinstance(rows, list):
            raise BackOfficeError(
                f"{WHAT} answered HTTP {done.answer.status_code}, but not with an OData "
                "entity set (no \"value\" list).",
                permanent=True,
                hint=f"Use the API entity set URL as the web service URI: {API_PATH_EXAMPLE}.",
                error_class="UnexpectedAnswer",
                status_code=done.answer.status_code,
                response_excerpt=done.excerpt,
            )
        return ProbeResult(
            detail=f"GET {entity_set_name(uri)}?$top=1 answered HTTP "
            f"{done.answer.status_code} ({len(rows)} record(s) read, nothing written).",
            status_code=done.answer.status_code,
        )

    def _exchange(self, method: str, url: str, content: bytes | None = None, *,
                  pooled: bool = False) -> rest.Exchange:
        try:
            return rest.exchange(
                self.connector, method, url, what=WHAT, content=content, headers=JSON_HEADERS,
                pooled=pooled,
            )
        except BackOfficeError as exc:
            if exc.status_code == 401:  # what to check depends on the auth type
                exc.hint = auth.unauthorized_hint(self.connector)
            raise

    def _within(self, deadline: float) -> Connector | None:
        """The connector with the time left as its timeout, or None when less than 1 s is left."""
        left = deadline - time.monotonic()
        if left < 1:
            return None
        limited = copy.copy(self.connector)
        limited.timeout_s = int(left)
        return limited

    def _metadata(self, deadline: float) -> str | None:
        """The `$metadata` document, or None when it cannot be read in the time left."""
        connector = self._within(deadline)
        if connector is None:
            return None
        try:
            done = rest.exchange(
                connector, "GET", metadata_url(self.connector.uri),
                what=WHAT, headers={"Accept": "application/xml"},
            )
        except BackOfficeError:
            return None
        return done.answer.text

    def _probe_metadata(self, error: BackOfficeError, deadline: float) -> ProbeResult:
        name = entity_set_name(self.connector.uri)
        csdl = self._metadata(deadline)
        if csdl is None or not lists_entity_set(csdl, name):
            error.hint = (
                f"The entity set does not allow GET and $metadata does not list '{name}': "
                f"check the URI ({API_PATH_EXAMPLE})."
            )
            raise error
        return ProbeResult(
            detail=f"The entity set does not allow GET (HTTP 405); $metadata lists '{name}', "
            "so records can be posted to it.",
            status_code=405,
        )

    def _diagnose_not_found(self, deadline: float) -> str:
        name = entity_set_name(self.connector.uri)
        csdl = self._metadata(deadline)
        if csdl is None:
            return (
                "Neither the entity set nor the API's $metadata answers: check the URI up to "
                "…/api/dimeSoftware/dimeScheduler/v1.0/ (server, instance or tenant and "
                "environment) and that the Dime.Scheduler API extension is installed."
            )
        if lists_entity_set(csdl, name):
            return (
                "The Dime.Scheduler API answers, so the company is not found: check the company "
                "id in companies(…) (GET …/v1.0/companies lists them)."
            )
        return (
            f"The Dime.Scheduler API answers but has no entity set '{name}': check the last "
            f"part of the URI ({API_PATH_EXAMPLE}) and the extension's version."
        )
