"""One delta round of one mailbox (DESIGN.md, Exchange sync: Outlook → planner).

1. Take the mailbox's lock (a second caller gets "busy"; the round after it catches up).
2. Read every page of calendarView delta (from the stored deltaLink, or in full over the
   window; an expired deltaLink → a full read). A failed read applies nothing.
3. Removals of linked events (and, in a full read, linked events within the window that are
   missing) are confirmed with a GET each ($batch): an event that still exists only left the
   window or moved, and is applied as a change; a 404 is a deletion. Cancelled events are
   deletions too. The mass-deletion guard may hold them.
4. In one transaction: apply the changes and deletions, log them, store the new deltaLink.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..graph import GraphClient, GraphError
from ..models import (
    EventLink,
    ExchangeSettings,
    MailboxState,
    Resource,
    SyncDirection,
    SyncLogEntry,
)
from ..times import overlaps, sync_window
from . import guard, schedule
from .apply import Applier, Counts
from .mapping import recurrence_summary
from .read import (
    PAGE_SIZE,
    DeltaRead,
    fetch_events,
    fetch_series,
    read_delta,
    sync_state_lost,
)

log = logging.getLogger(__name__)
Kind = SyncLogEntry.Kind


@dataclass
class RoundSummary:
    """What one round did. `status`: ok | busy | failed | off."""

    resource_id: int
    status: str = "ok"
    full: bool = False
    pages: int = 0
    read: int = 0
    counts: Counts = field(default_factory=Counts)
    error: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), **asdict(self.counts)}

    def __str__(self) -> str:
        head = f"resource {self.resource_id}: "
        if self.status == "busy":
            return head + "busy (another round of this mailbox is running)"
        if self.status == "off":
            return head + (self.note or "not synced")
        if self.status == "failed":
            return head + f"failed: {self.error}"
        c = self.counts
        text = (f"{'full' if self.full else 'delta'} round, {self.read} item(s) on {self.pages} "
                f"page(s): {c.created} created, {c.updated} updated, {c.deleted} deleted, "
                f"{c.unshared} not shared, {c.skipped} unchanged, {c.conflicts} conflict(s), "
                f"{c.held} held, {c.errors} error(s)")
        return head + text + (f" ({self.note})" if self.note else "")


def run_round(resource: Resource, *, full: bool = False, client: GraphClient | None = None,
              page_size: int = PAGE_SIZE) -> RoundSummary:
    """Run one delta round of the resource's mailbox now; returns what it did.

    Never raises for Graph failures (the round is "failed": nothing applied, the deltaLink
    kept, the error stored on MailboxState). `full` (or MailboxState.full_round_needed) reads
    the whole window instead of following the deltaLink.
    """
    summary = RoundSummary(resource.pk)
    exchange = ExchangeSettings.load()
    if not exchange.configured:
        summary.status, summary.note = "off", "Exchange sync is off or not configured."
        return summary
    if not (resource.sync_enabled and resource.email):
        summary.status, summary.note = "off", "The resource's sync is off or it has no mailbox."
        return summary
    owner = schedule.acquire(resource.pk)
    if owner is None:
        schedule.keep_due(resource.pk)
        summary.status = "busy"
        return summary
    try:
        summary.full = schedule.take_full_flag(resource.pk) or full
        graph = client or GraphClient.from_settings(exchange)
        try:
            _Round(resource, exchange, graph, summary, page_size).run()
        finally:
            if client is None:
                graph.close()
    finally:
        schedule.release(resource.pk, owner)
    if summary.status == "ok" and schedule.due_again(resource.pk):  # changes during the round
        schedule.queue_round(resource.pk)
    return summary


class _Round:
    def __init__(self, resource: Resource, exchange: ExchangeSettings, client: GraphClient,
                 summary: RoundSummary, page_size: int) -> None:
        self.resource = resource
        self.exchange = exchange
        self.client = client
        self.summary = summary
        self.page_size = page_size
        self.state = MailboxState.objects.get(resource=resource)

    def run(self) -> None:
        try:
            read = self._read()
            applier, changes, removals = self._plan(read)
        except GraphError as exc:
            self._failed(exc)
            return
        self._apply(read, applier, changes, removals)

    # -- reading -------------------------------------------------------------------------------
    def _read(self) -> DeltaRead:
        state, summary = self.state, self.summary
        delta_link = "" if summary.full else state.delta_link
        if delta_link and state.window_start and state.window_end:
            span = (state.window_start, state.window_end)
        else:
            span, delta_link = sync_window(self.exchange), ""
        try:
            read = read_delta(self.client, self.resource, delta_link=delta_link,
                              window_range=span, page_size=self.page_size)
        except GraphError as exc:
            if not delta_link or not sync_state_lost(exc):
                raise
            # Graph forgot the sync state (410): read everything again, against the links.
            MailboxState.objects.filter(pk=state.pk).update(delta_link="")
            summary.note = "the delta link had expired: read in full"
            summary.full = True
            read = read_delta(self.client, self.resource, delta_link="",
                              window_range=sync_window(self.exchange), page_size=self.page_size)
        summary.full = read.full
        summary.pages, summary.read = read.pages, read.items
        return read

    def _plan(self, read: DeltaRead) -> tuple[Applier, list[dict[str, Any]], list[EventLink]]:
        """The changes to apply and the links whose events are gone (confirmed by GET)."""
        applier = Applier(self.resource, self.exchange, self.summary.counts)
        links = applier.links
        suspects = {event_id for event_id in read.removed if event_id in links}
        if read.full:
            start, end = read.window
            suspects |= {event_id for event_id, link in links.items()
                         if event_id not in read.changed
                         and overlaps(link.appointment.data, start, end)}
        removals: list[EventLink] = []
        changes: dict[str, dict[str, Any]] = {}
        for event_id, event in fetch_events(self.client, self.resource, sorted(suspects)).items():
            if event is None:
                removals.append(links[event_id])
            else:
                changes[event_id] = event  # still there: it moved out of the window
        for event_id, event in read.changed.items():
            if event.get("isCancelled"):
                if event_id in links:
                    removals.append(links[event_id])
            else:
                changes[event_id] = event
        applier.series = self._series(read, applier, list(changes.values()))
        return applier, list(changes.values()), removals

    def _series(self, read: DeltaRead, applier: Applier,
                changes: list[dict[str, Any]]) -> dict[str, str]:
        """Recurrence summaries of the series whose occurrences changed (from the read when
        it carries the master, else one $batch of GETs)."""
        known = {event_id: recurrence_summary(event.get("recurrence"))
                 for event_id, event in read.changed.items()
                 if event.get("type") == "seriesMaster"}
        wanted = sorted({str(e["seriesMasterId"]) for e in changes
                         if e.get("seriesMasterId") and not applier.is_echo(e)} - set(known))
        fetched = fetch_series(self.client, self.resource, wanted)
        known.update({master: recurrence_summary(rec) for master, rec in fetched.items()})
        return {master: text for master, text in known.items() if text}

    # -- applying ------------------------------------------------------------------------------
    def _apply(self, read: DeltaRead, applier: Applier, changes: list[dict[str, Any]],
               removals: list[EventLink]) -> None:
        counts = self.summary.counts
        with transaction.atomic():
            live = [link for link in removals if not link.appointment.deleted]
            linked = EventLink.objects.filter(resource=self.resource,
                                              appointment__deleted=False).exclude(
                event_id="").count()
            empty = read.full and not read.changed and bool(live)
            verdict = guard.judge(len(live), linked, self.exchange, empty_full_read=empty)
            for event in changes:
                applier.change(event)
            if verdict.hold:
                applier.logs.append(guard.hold(self.state, live, verdict.reason))
                counts.held = len(live)
                removals = [link for link in removals if link not in live]
            for link in removals:
                if link.event_id in applier.links:
                    applier.remove(link, "deleted or cancelled in Outlook")
            applier.flush()
            now = timezone.now()
            changes_to_state: dict[str, Any] = {
                "delta_link": read.delta_link, "last_round_at": now, "last_round_ok": True,
                "last_error": "",
            }
            if read.full:
                changes_to_state.update(window_start=read.window[0], window_end=read.window[1],
                                        last_full_round_at=now)
            MailboxState.objects.filter(pk=self.state.pk).update(**changes_to_state)

    def _failed(self, error: GraphError) -> None:
        """Nothing was applied; the deltaLink stays. Transient failures are retried by the
        every-minute schedule; a full round stays full."""
        summary = self.summary
        summary.status, summary.error = "failed", error.message
        was_ok = self.state.last_round_ok is not False
        changes: dict[str, Any] = {"last_round_at": timezone.now(), "last_round_ok": False,
                                   "last_error": f"{error.message} {error.hint}".strip()[:2000]}
        if summary.full:
            changes["full_round_needed"] = True
        MailboxState.objects.filter(pk=self.state.pk).update(**changes)
        if not error.permanent:
            schedule.keep_due(self.resource.pk, after_s=schedule.RETRY_AFTER_FAILURE_S)
        if was_ok:  # log the change of state, not every failed retry
            SyncLogEntry.objects.create(
                direction=SyncDirection.INBOUND, kind=Kind.ERROR, resource=self.resource,
                message=f"Could not read the mailbox's changes; nothing was applied: "
                f"{error.message}", hint=error.hint)
        log.warning("Delta round of resource %s failed: %s", self.resource.pk, error.message)
