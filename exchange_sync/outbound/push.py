"""Pushing claimed appointments to Outlook through Graph `$batch` (at most 20 calls a request).

Rounds: the planned calls go out in batches; what their answers call for goes out in the next
round (a 412 is read again and reapplied, an event gone from the mailbox is created anew), at
most MAX_ROUNDS rounds. A transient failure (429/5xx after the client's own retries, a timeout)
puts the appointment back in the queue with a backoff; a permanent one (a wrong mailbox, a
refused body) is written to the sync log with its hint and not retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django.utils import timezone

from ..graph import BatchItem, BatchResult, GraphClient, GraphError
from ..models import EventLink, ExchangeSettings, SyncDirection, SyncLogEntry
from ..resources import mailbox_path
from ..times import parse_utc
from . import queue
from .plan import Op, plan
from .render import create_body

log = logging.getLogger(__name__)

MAX_ROUNDS = 4
DEFAULT_LIMIT = 200  # appointments per claim
Kind = SyncLogEntry.Kind


@dataclass
class PushSummary:
    claimed: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    conflicts: int = 0
    failed: int = 0
    retrying: int = 0
    requests: int = 0
    note: str = ""

    def add(self, other: PushSummary) -> None:
        for name in ("claimed", "created", "updated", "deleted", "conflicts", "failed",
                     "retrying", "requests"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.note = other.note or self.note

    def __str__(self) -> str:
        if self.note and not self.claimed:
            return self.note
        return (f"{self.claimed} appointment(s): {self.created} created, {self.updated} updated, "
                f"{self.deleted} deleted, {self.conflicts} conflict(s), {self.failed} failed, "
                f"{self.retrying} to retry; {self.requests} Graph request(s)")


def events_url(op: Op) -> str:
    return mailbox_path(op.resource)


def _item(number: int, op: Op) -> BatchItem:
    url = events_url(op)
    if op.kind == "create":
        return BatchItem(str(number), "POST", url, create_body(op.link, op.event))
    url = f"{url}/{quote(op.link.event_id, safe='')}"
    if op.kind == "update":
        etag = op.etag or f'W/"{op.link.change_key}"'
        return BatchItem(str(number), "PATCH", url, op.event, {"If-Match": etag})
    if op.kind == "delete":
        return BatchItem(str(number), "DELETE", url)
    return BatchItem(str(number), "GET", url)


class _Push:
    """One run over a list of operations; collects the log and the failed appointments."""

    def __init__(self, client: GraphClient, summary: PushSummary) -> None:
        self.client = client
        self.summary = summary
        self.logs: list[SyncLogEntry] = []
        self.retry: dict[int, tuple[str, float | None]] = {}  # appointment -> (error, after)

    def run(self, ops: list[Op]) -> None:
        for _ in range(MAX_ROUNDS):
            if not ops:
                return
            ops = self._round(ops)
        for op in ops:  # still going after MAX_ROUNDS: the event keeps changing under us
            self.retry[op.appointment.pk] = ("The event kept changing in Outlook.", None)

    def _round(self, ops: list[Op]) -> list[Op]:
        follow: list[Op] = []
        for start in range(0, len(ops), 20):
            chunk = ops[start:start + 20]
            try:
                results = self.client.batch([_item(n, op) for n, op in enumerate(chunk)])
            except GraphError as exc:  # the batch itself failed: every item of it did
                results = {str(n): BatchResult(str(n), exc.status_code or 0, {}, None, exc)
                           for n in range(len(chunk))}
            self.summary.requests += 1
            for number, op in enumerate(chunk):
                follow.extend(self._handle(op, results[str(number)]))
        return follow

    def _handle(self, op: Op, result: BatchResult) -> list[Op]:
        handler: Callable[[Op, BatchResult], list[Op]] = getattr(self, f"_{op.kind}")
        if result.error is not None and result.status not in (404, 412):
            self._failed(op, result.error)
            return []
        return handler(op, result)

    # -- per kind ----------------------------------------------------------------------------
    def _create(self, op: Op, result: BatchResult) -> list[Op]:
        if result.status == 404:  # the mailbox itself is not there
            assert result.error is not None
            self._failed(op, result.error)
            return []
        body = result.body or {}
        self._store(op.link, body, op.hash)
        self._log(op, Kind.CREATED, "Created the Outlook event.")
        self.summary.created += 1
        if not _matches(body, op.event):  # an earlier create of another state was replayed
            return [Op("update", op.link, op.event, op.hash, body.get("@odata.etag", ""))]
        return []

    def _update(self, op: Op, result: BatchResult) -> list[Op]:
        if result.status == 412:  # changed in Outlook since we wrote it: read it again
            return [Op("get", op.link, op.event, op.hash)]
        if result.status == 404:
            return self._recreate(op, "The event was gone from the mailbox; created it again.")
        self._store(op.link, result.body or {}, op.hash)
        self._log(op, Kind.UPDATED, "Updated the Outlook event.")
        self.summary.updated += 1
        return []

    def _delete(self, op: Op, result: BatchResult) -> list[Op]:
        link = op.link
        event_id = link.event_id
        link.forget_event()
        message = ("Deleted the Outlook event." if result.status != 404
                   else "The Outlook event was already gone.")
        self._log(op, Kind.DELETED, message, event_id=event_id)
        self.summary.deleted += 1
        return []

    def _get(self, op: Op, result: BatchResult) -> list[Op]:
        if result.status == 404:
            return self._recreate(op, "The event was gone from the mailbox; created it again.")
        body = result.body or {}
        modified = parse_utc(body.get("lastModifiedDateTime"))
        if modified is not None and modified > op.appointment.state_at:
            self._conflict(op, modified)
            return []
        return [Op("update", op.link, op.event, op.hash,
                   body.get("@odata.etag") or f'W/"{body.get("changeKey", "")}"')]

    # -- helpers -----------------------------------------------------------------------------
    def _recreate(self, op: Op, message: str) -> list[Op]:
        op.link.forget_event()
        self._log(op, Kind.UPDATED, message)
        return [Op("create", op.link, op.event, op.hash)]

    def _conflict(self, op: Op, modified: datetime) -> None:
        """Both sides changed since the last sync and Outlook's change is the newer: it wins.
        The planner's state is not written; the mailbox's next delta round brings Outlook's."""
        self._log(op, Kind.CONFLICT,
                  "Conflict: the event changed in Outlook after the planner's change; the "
                  "newer Outlook change wins and the planner's change was not written.",
                  detail={"outlook_modified": modified.isoformat(),
                          "planner_changed": op.appointment.state_at.isoformat()})
        self.summary.conflicts += 1
        from ..inbound import schedule_round  # inbound builds on outbound: imported late

        schedule_round(op.resource.pk, delay_s=0)

    def _failed(self, op: Op, error: GraphError) -> None:
        if error.permanent:
            self._log(op, Kind.ERROR, f"Could not {op.kind} the Outlook event: {error.message}",
                      hint=error.hint)
            self.summary.failed += 1
        else:
            self.retry[op.appointment.pk] = (error.message, error.retry_after)

    def _store(self, link: EventLink, body: dict[str, Any], digest: str) -> None:
        link.event_id = str(body.get("id") or link.event_id)
        link.change_key = str(body.get("changeKey") or "")
        link.outlook_modified_at = parse_utc(body.get("lastModifiedDateTime"))
        link.content_hash = digest
        link.planner_state_at = link.appointment.state_at
        link.synced_at = timezone.now()
        link.save(update_fields=["event_id", "change_key", "outlook_modified_at", "content_hash",
                                 "planner_state_at", "synced_at"])

    def _log(self, op: Op, kind: str, message: str, *, hint: str = "", event_id: str = "",
             detail: dict[str, Any] | None = None) -> None:
        self.logs.append(SyncLogEntry(
            direction=SyncDirection.OUTBOUND, kind=kind, resource=op.resource,
            appointment=op.appointment, event_id=event_id or op.link.event_id,
            message=message, hint=hint, detail=detail or {},
        ))


def _matches(body: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether the event Graph answered with carries the state we sent (a transactionId replay
    answers with the event as first created)."""
    return all(body.get(key) == event[key] for key in ("subject", "isAllDay")) and all(
        (body.get(key) or {}).get("dateTime", "")[:19] == event[key]["dateTime"][:19]
        for key in ("start", "end")
    )


def push_pending(*, limit: int = DEFAULT_LIMIT, client: GraphClient | None = None
                 ) -> PushSummary:
    """Claim up to `limit` queued appointments and bring their Outlook events up to date.

    Returns what was done. Never raises for Graph failures (they are logged or retried);
    does nothing while Exchange sync is off or not configured (the queue waits).
    """
    summary = PushSummary()
    exchange = ExchangeSettings.load()
    if not exchange.configured:
        summary.note = ("Exchange sync is off." if not exchange.enabled else
                        "Exchange sync has no tenant ID, client ID or client secret.")
        return summary
    claims = queue.claim(limit)
    summary.claimed = len(claims)
    if not claims:
        return summary
    own_client = client is None
    graph = client or GraphClient.from_settings(exchange)
    push = _Push(graph, summary)
    try:
        push.run(plan([c.appointment_id for c in claims],
                      force=[c.appointment_id for c in claims if c.force]))
    except GraphError as exc:  # e.g. no token: nothing of this claim was done; retry it all
        for claim in claims:
            push.retry[claim.appointment_id] = (exc.message, exc.retry_after)
    finally:
        if own_client:
            graph.close()
    SyncLogEntry.objects.bulk_create(push.logs)
    for claim in claims:
        if claim.appointment_id in push.retry:
            error, after = push.retry[claim.appointment_id]
            queue.retry_later(claim, error=error, retry_after=after)
            summary.retrying += 1
        else:
            queue.done([claim])
    return summary


def push_all(*, limit: int = DEFAULT_LIMIT, budget_s: float = 50.0, settle_s: float = 0.0,
             progress: Callable[[PushSummary], None] | None = None) -> PushSummary:
    """Push claims until none is due or `budget_s` has passed (the task's and the command's
    loop); `progress` is called after each claim with the running totals. With `settle_s`, a
    claim that was not full waits that long before the next one, so changes still streaming in
    gather into full `$batch` requests instead of many small ones (docs/BENCHMARKS.md)."""
    total = PushSummary()
    deadline = time.monotonic() + budget_s
    exchange = ExchangeSettings.load()
    if not exchange.configured:
        return push_pending(limit=limit)
    with GraphClient.from_settings(exchange) as client:
        while time.monotonic() < deadline:
            summary = push_pending(limit=limit, client=client)
            total.add(summary)
            if progress is not None:
                progress(total)
            if summary.claimed == 0:
                break
            if summary.claimed < limit and settle_s:
                time.sleep(settle_s)
    return total
