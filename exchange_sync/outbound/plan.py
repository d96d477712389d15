"""What each claimed appointment needs in Outlook: create, update, delete or nothing.

An appointment wants an event in a resource's mailbox when it is not deleted, has a start and
an end, the resource is assigned to it, syncs (sync on, a mailbox) and the resource's outbound
rules pass. Every planner-origin link whose event is no longer wanted is deleted — and only
those: events that came from Outlook (origin "outlook") are never touched by the outbound side.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from connectors.models import Appointment

from .. import rules
from ..models import EventLink, LinkOrigin, Resource
from ..resources import resource_entries
from .render import content_hash, render_event, schedulable


@dataclass
class Op:
    """One Graph call to make for one (appointment, resource)."""

    kind: str  # create | update | delete | get
    link: EventLink
    event: dict[str, Any] = field(default_factory=dict)  # the rendered event (create, update)
    hash: str = ""
    etag: str = ""  # If-Match for an update after a 412

    @property
    def resource(self) -> Resource:
        return self.link.resource

    @property
    def appointment(self) -> Appointment:
        return self.link.appointment


def wants_event(appointment: Appointment, resource: Resource) -> bool:
    return (
        not appointment.deleted
        and resource.sync_enabled
        and bool(resource.email)
        and schedulable(appointment.data)
        and rules.passes(resource, appointment.data)
    )


def _assigned(appointments: Iterable[Appointment]) -> dict[int, list[Resource]]:
    """The Resource rows assigned to each appointment (rules prefetched), in two queries."""
    wanted: dict[int, list[tuple[str, str]]] = {
        appointment.pk: [(appointment.source_app, number)
                         for number in resource_entries(appointment.data)]
        for appointment in appointments
    }
    apps = {app for keys in wanted.values() for app, _ in keys}
    numbers = {number for keys in wanted.values() for _, number in keys}
    if not numbers:
        return {pk: [] for pk in wanted}
    found = {
        (resource.source_app, resource.resource_no): resource
        for resource in Resource.objects.filter(
            source_app__in=apps, resource_no__in=numbers
        ).prefetch_related("rules")
    }
    return {pk: [found[key] for key in keys if key in found] for pk, keys in wanted.items()}


def plan(appointment_ids: Iterable[int], *, force: Iterable[int] = ()) -> list[Op]:
    """The operations that bring the appointments' events up to date.

    Creates the links new events need (so their transactionId is fixed before the first try).
    `force`: appointment ids whose events are rewritten even when their hash is unchanged.
    """
    forced = set(force)
    appointments = Appointment.objects.in_bulk(list(appointment_ids))
    links: dict[int, dict[int, EventLink]] = defaultdict(dict)
    for link in EventLink.objects.filter(appointment_id__in=list(appointments)).select_related(
        "resource", "appointment"
    ):
        links[link.appointment_id][link.resource_id] = link
    assigned = _assigned(appointments.values())
    ops: list[Op] = []
    for pk, appointment in sorted(appointments.items()):
        wanted = {r.pk: r for r in assigned[pk] if wants_event(appointment, r)}
        ops.extend(_plan_one(appointment, wanted, links[pk], force=pk in forced))
    return ops


def _plan_one(appointment: Appointment, wanted: dict[int, Resource],
              links: dict[int, EventLink], *, force: bool) -> list[Op]:
    ops = [
        Op("delete", link) for resource_id, link in links.items()
        if link.origin == LinkOrigin.PLANNER and link.event_id and resource_id not in wanted
    ]
    if not wanted:
        return ops
    event = render_event(appointment)
    digest = content_hash(event)
    for resource_id, resource in wanted.items():
        link = links.get(resource_id)
        if link is None:
            link, _ = EventLink.objects.get_or_create(
                appointment=appointment, resource=resource,
                defaults={"origin": LinkOrigin.PLANNER},
            )
        link.resource, link.appointment = resource, appointment
        if link.origin != LinkOrigin.PLANNER:
            continue  # the mailbox owner's own event: the planner never writes to it
        if not link.event_id:
            ops.append(Op("create", link, event, digest))
        elif force or link.content_hash != digest:
            ops.append(Op("update", link, event, digest))
    return ops
