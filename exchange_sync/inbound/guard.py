"""The mass-deletion guard and what an administrator decides about held deletions.

A round that would delete more than `mass_delete_percent` % of a mailbox's linked appointments,
and at least `mass_delete_minimum` of them, deletes none of them: it stores the links in
`MailboxState.held_deletions` (with when and why), logs a "held" entry and applies the rest.
So does a full read that lists no event at all while linked appointments exist in the window
(an empty read never deletes). The administrator then confirms (the deletions are applied) or
discards (the appointments stay; DimeConnect's own events are created again in Outlook).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..models import (
    EventLink,
    ExchangeSettings,
    LinkOrigin,
    MailboxState,
    SyncDirection,
    SyncLogEntry,
)
from ..outbound import mark_pending, queue_push
from . import schedule
from .apply import Applier

Kind = SyncLogEntry.Kind


class MailboxBusy(Exception):
    """A delta round holds the mailbox's lock; try again in a moment."""


@dataclass(frozen=True)
class Verdict:
    hold: bool
    reason: str = ""


def judge(deleting: int, linked: int, exchange: ExchangeSettings, *,
          empty_full_read: bool = False) -> Verdict:
    """Whether `deleting` of `linked` appointments must be held."""
    if not deleting:
        return Verdict(False)
    if empty_full_read:
        return Verdict(True, f"A full read of the mailbox listed no event at all, while "
                             f"{deleting} linked appointment(s) are in the sync window: an empty "
                             "read never deletes.")
    share = 100 * deleting / max(linked, 1)
    if deleting >= exchange.mass_delete_minimum and share > exchange.mass_delete_percent:
        return Verdict(True, f"The round would delete {deleting} of the mailbox's {linked} "
                             f"linked appointments ({share:.0f} %, more than the guard's "
                             f"{exchange.mass_delete_percent} %).")
    return Verdict(False)


def hold(state: MailboxState, links: list[EventLink], reason: str) -> SyncLogEntry:
    """Add the links to the mailbox's held deletions; returns the (unsaved) log entry."""
    held = sorted({*(int(pk) for pk in state.held_deletions or []), *(link.pk for link in links)})
    MailboxState.objects.filter(pk=state.pk).update(held_deletions=held, held_at=timezone.now(),
                                                    held_reason=reason)
    state.held_deletions = held
    return SyncLogEntry(
        direction=SyncDirection.INBOUND, kind=Kind.HELD, resource_id=state.resource_id,
        message=f"Held {len(links)} deletion(s) for an administrator to confirm: {reason}",
        hint="Admin → Exchange sync → Mailbox states: confirm to delete the appointments, or "
        "discard to keep them (DimeConnect's own events are then created again in Outlook).",
        detail={"links": [link.pk for link in links]},
    )


def _user_name(user: Any) -> str:
    name = user.get_username() if hasattr(user, "get_username") else str(user or "")
    return name or "an administrator"


def _held_links(state: MailboxState) -> list[EventLink]:
    return list(EventLink.objects.filter(pk__in=list(state.held_deletions or []),
                                         resource_id=state.resource_id)
                .exclude(event_id="").select_related("appointment", "resource"))


def _decide(state: MailboxState, user: Any, apply: bool) -> int:
    owner = schedule.acquire(state.resource_id, starting_round=False)
    if owner is None:
        raise MailboxBusy("A delta round is running for this mailbox; try again in a minute.")
    try:
        with transaction.atomic():
            state = MailboxState.objects.select_related("resource").get(pk=state.pk)
            links = _held_links(state)
            count = (_confirm if apply else _discard)(state, links, _user_name(user))
            MailboxState.objects.filter(pk=state.pk).update(held_deletions=[], held_at=None,
                                                            held_reason="")
        return count
    finally:
        schedule.release(state.resource_id, owner)


def _confirm(state: MailboxState, links: list[EventLink], who: str) -> int:
    applier = Applier(state.resource, ExchangeSettings.load())
    for link in links:
        applier.remove(link, f"deleted in Outlook (held deletion confirmed by {who})")
    applier.log(Kind.CONFIRMED, f"{who} confirmed {len(links)} held deletion(s): the "
                 "appointments were deleted.")
    applier.flush()
    return len(links)


def _discard(state: MailboxState, links: list[EventLink], who: str) -> int:
    recreate: list[int] = []
    for link in links:
        if link.origin == LinkOrigin.PLANNER:
            link.forget_event()
            recreate.append(link.appointment_id)
        else:
            link.delete()  # the owner's event is gone; the appointment stays, unlinked
    if recreate:
        mark_pending(recreate)
        transaction.on_commit(queue_push)
    SyncLogEntry.objects.create(
        direction=SyncDirection.INBOUND, kind=Kind.CONFIRMED, resource_id=state.resource_id,
        message=f"{who} discarded {len(links)} held deletion(s): the appointments were kept; "
        f"{len(recreate)} event(s) of DimeConnect's are created again in Outlook.",
    )
    return len(links)


def held_deletions_confirm(*, state: MailboxState, user: Any) -> int:
    """Apply the mailbox's held deletions (each appointment deleted and written back to the
    back offices). Returns how many. Raises MailboxBusy while a round runs."""
    return _decide(state, user, apply=True)


def held_deletions_discard(*, state: MailboxState, user: Any) -> int:
    """Keep the held appointments: DimeConnect's own events are created again in Outlook (the
    link is cleared and the appointment queued for a push); the owner's vanished events'
    appointments stay, unlinked. Returns how many. Raises MailboxBusy while a round runs."""
    return _decide(state, user, apply=False)
