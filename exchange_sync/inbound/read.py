"""Reading one mailbox's changes: calendarView delta over the sync window, every page first.

https://learn.microsoft.com/graph/delta-query-events: the first request names the window
(`startDateTime`, `endDateTime`) and pages through every event in it; the last page carries a
`@odata.deltaLink` that later rounds follow to get only what changed since (changed events in
full, deleted ones and ones that left the window as `{"id", "@removed": {...}}`). A delta link
Graph no longer knows answers 410 `SyncStateNotFound` (matched case-insensitively, with the other
codes Graph uses for it): the round then reads the window again from scratch (a full round).

Nothing is applied until every page has arrived: a read failing halfway (any GraphError, a
timeout, a 410 on a nextLink) raises, and the caller applies nothing and keeps its delta link.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ..graph import BatchItem, GraphClient, GraphError
from ..models import Resource
from ..resources import mailbox_path
from ..times import utc_text

PAGE_SIZE = 100  # Prefer: odata.maxpagesize (Graph's own maximum for events is larger)


def events_path(resource: Resource) -> str:
    return mailbox_path(resource)


@dataclass
class DeltaRead:
    """What one read returned: `changed` events by id (merged: the last item of an id wins, so
    an `@removed` after an update wins), `removed` ids, the new delta link, and whether it was
    a full read (no delta link: every event of the window is listed)."""

    full: bool
    window: tuple[datetime, datetime]
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    delta_link: str = ""
    pages: int = 0
    items: int = 0

    def add(self, item: dict[str, Any]) -> None:
        event_id = str(item.get("id") or "")
        if not event_id:
            return
        self.items += 1
        if "@removed" in item:
            self.changed.pop(event_id, None)
            self.removed.add(event_id)
        else:
            self.removed.discard(event_id)
            self.changed[event_id] = item


def read_delta(client: GraphClient, resource: Resource, *, delta_link: str,
               window_range: tuple[datetime, datetime], page_size: int = PAGE_SIZE) -> DeltaRead:
    """Every page of one delta read: from `delta_link`, or (blank) a full read of the window.

    Raises GraphError (its `sync_state_lost` true for an expired delta link) on any failure.
    """
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    read = DeltaRead(full=not delta_link, window=window_range)
    if delta_link:
        pages = client.pages(delta_link, headers=headers)
    else:
        start, end = window_range
        path = mailbox_path(resource, "calendarView/delta")
        pages = client.pages(path, params={"startDateTime": utc_text(start),
                                           "endDateTime": utc_text(end)}, headers=headers)
    for page in pages:
        read.pages += 1
        for item in page.get("value") or []:
            if isinstance(item, dict):
                read.add(item)
        read.delta_link = str(page.get("@odata.deltaLink") or "")
    if not read.delta_link:
        raise GraphError("Microsoft Graph's delta answer ended without a deltaLink.",
                         permanent=False, error_class="DeltaIncomplete",
                         hint="The read is retried; nothing of it was applied.")
    return read


def sync_state_lost(error: GraphError) -> bool:
    """An expired delta (or skip) token: 410, or one of Graph's codes for it."""
    return error.sync_state_lost or error.status_code == 410


def fetch_events(client: GraphClient, resource: Resource,
                 event_ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """The current state of each event ({id: event, or None when Graph answers 404}), through
    $batch. Raises GraphError when an answer is neither (the caller treats the read as failed).
    """
    base = events_path(resource)
    items = [BatchItem(str(n), "GET", f"{base}/{quote(event_id, safe='')}")
             for n, event_id in enumerate(event_ids)]
    found: dict[str, dict[str, Any] | None] = {}
    for number, result in client.batch(items).items() if items else ():
        event_id = event_ids[int(number)]
        if result.status in (404, 410):
            found[event_id] = None
        elif result.error is not None:
            raise result.error
        else:
            found[event_id] = result.body if isinstance(result.body, dict) else None
    return found


def fetch_series(client: GraphClient, resource: Resource,
                 master_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The series masters' recurrence ({master id: recurrence}); a master that cannot be read
    is left out (its occurrences then carry the master id without the summary)."""
    base = events_path(resource)
    items = [BatchItem(str(n), "GET", f"{base}/{quote(master_id, safe='')}?$select=recurrence")
             for n, master_id in enumerate(master_ids)]
    try:
        results = client.batch(items) if items else {}
    except GraphError:
        return {}
    return {master_ids[int(number)]: result.body.get("recurrence") or {}
            for number, result in results.items()
            if result.error is None and isinstance(result.body, dict)}
