"""`sync_exchange`: choose what to push, and (--full) reconcile a mailbox with its links.

Selection: every appointment (not deleted) assigned to a synced resource whose time overlaps
the sync window, plus every appointment that still has an event of ours in Outlook (so one
that no longer qualifies loses it). With a resource: only that resource's.

Full reconciliation of a mailbox reads its calendarView over the window with DimeConnect's
extended property and compares it with the links: an event of ours whose link was lost (a
restored database) is adopted when its appointment still wants it, else deleted; a link whose
event is missing from the window is cleared, so the push creates the event again. Only events
carrying our property are ever touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from django.db.models import Q

from connectors.models import Appointment

from ..graph import BatchItem, GraphClient
from ..models import EventLink, ExchangeSettings, LinkOrigin, Resource, SyncDirection, SyncLogEntry
from ..models.sync import EXTENDED_PROPERTY_ID
from ..resources import mailbox_path, synced
from ..times import overlaps, sync_window, utc_text
from .plan import wants_event


def appointments_to_push(resources: Iterable[Resource], exchange: ExchangeSettings) -> list[int]:
    """The ids of the appointments `sync_exchange` pushes for these resources."""
    resources = list(resources)
    start, end = sync_window(exchange)
    assigned = Q(pk__in=[])
    for resource in synced(resources):
        assigned |= Q(source_app=resource.source_app,
                      resource_nos__resource_no=resource.resource_no)
    chosen = {
        appointment.pk
        for appointment in Appointment.objects.filter(assigned, deleted=False).distinct()
        if overlaps(appointment.data, start, end)
    }
    chosen.update(
        EventLink.objects.filter(resource__in=resources, origin=LinkOrigin.PLANNER)
        .exclude(event_id="").values_list("appointment_id", flat=True)
    )
    return sorted(chosen)


@dataclass
class ReconcileSummary:
    listed: int = 0
    adopted: int = 0
    orphans_deleted: int = 0
    missing: int = 0

    def __str__(self) -> str:
        return (f"{self.listed} event(s) of ours in the window: {self.adopted} re-linked, "
                f"{self.orphans_deleted} orphan(s) deleted, {self.missing} missing "
                "(to create again)")


def _ours_in_window(client: GraphClient, resource: Resource,
                    exchange: ExchangeSettings) -> dict[str, tuple[str, str]]:
    """{event id: (appointment guid, changeKey)} of our events in the mailbox's window."""
    start, end = sync_window(exchange)
    expand = f"singleValueExtendedProperties($filter=id eq '{EXTENDED_PROPERTY_ID}')"
    ours: dict[str, tuple[str, str]] = {}
    path = mailbox_path(resource, "calendarView")
    params = {"startDateTime": utc_text(start), "endDateTime": utc_text(end),
              "$expand": expand, "$top": "100"}
    for event in client.get_all(path, params=params):
        for prop in event.get("singleValueExtendedProperties") or []:
            if prop.get("id", "").lower() == EXTENDED_PROPERTY_ID.lower():
                # a series occurrence carries its master's id in seriesMasterId; ours are
                # single events, so the event's own id is the one a link holds
                ours[str(event["id"])] = (str(prop.get("value") or ""),
                                          str(event.get("changeKey") or ""))
    return ours


def reconcile_mailbox(client: GraphClient, resource: Resource,
                      exchange: ExchangeSettings) -> ReconcileSummary:
    """Compare a synced mailbox's events of ours with its links (see the module docstring)."""
    summary = ReconcileSummary()
    ours = _ours_in_window(client, resource, exchange)
    summary.listed = len(ours)
    links = {link.event_id: link for link in EventLink.objects.filter(
        resource=resource, origin=LinkOrigin.PLANNER).exclude(event_id="").select_related(
        "appointment")}
    start, end = sync_window(exchange)
    for event_id, link in links.items():
        if event_id not in ours and overlaps(link.appointment.data, start, end):
            link.forget_event()
            summary.missing += 1
    orphans: list[str] = []
    for event_id, (guid, change_key) in ours.items():
        if event_id in links:
            continue
        if _adopt(resource, event_id, guid, change_key):
            summary.adopted += 1
        else:
            orphans.append(event_id)
    _delete_orphans(client, resource, orphans)
    summary.orphans_deleted = len(orphans)
    return summary


def _adopt(resource: Resource, event_id: str, guid: str, change_key: str) -> bool:
    appointment = Appointment.objects.filter(guid=guid).first() if _is_uuid(guid) else None
    if appointment is None or not wants_event(appointment, resource):
        return False
    link, _ = EventLink.objects.get_or_create(appointment=appointment, resource=resource)
    if link.origin != LinkOrigin.PLANNER or link.event_id:
        return False
    link.event_id, link.change_key, link.content_hash = event_id, change_key, ""
    link.save(update_fields=["event_id", "change_key", "content_hash"])
    return True


def _delete_orphans(client: GraphClient, resource: Resource, event_ids: list[str]) -> None:
    base = mailbox_path(resource)
    items = [BatchItem(str(n), "DELETE", f"{base}/{quote(event_id, safe='')}")
             for n, event_id in enumerate(event_ids)]
    results = client.batch(items) if items else {}
    SyncLogEntry.objects.bulk_create(
        SyncLogEntry(
            direction=SyncDirection.OUTBOUND, kind=SyncLogEntry.Kind.DELETED, resource=resource,
            event_id=event_id,
            message="Deleted an Outlook event of DimeConnect's that no appointment wants "
            "(found by a full reconciliation)." if results[str(n)].error is None
            or results[str(n)].status == 404 else
            f"Could not delete an orphaned event: {results[str(n)].error}",
        )
        for n, event_id in enumerate(event_ids)
    )


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
