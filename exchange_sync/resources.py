"""Resources from incoming appointment events, and the privacy filters that apply to each."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from .models import ExchangeSettings, Resource


def resource_entries(appointment_data: Mapping[str, Any]) -> dict[str, str]:
    """{resource_no: email} of an appointment as the event API carries it (last email wins;
    blank emails never replace a known one)."""
    entries: dict[str, str] = {}
    for item in appointment_data.get("resources") or []:
        if not isinstance(item, Mapping) or not item.get("resource_no"):
            continue
        number = str(item["resource_no"])[:50]
        email = str(item.get("email") or "").strip()[:254]
        if email or number not in entries:
            entries[number] = email
    return entries


def resources_upsert(*, source_app: str, entries: Mapping[str, str]) -> dict[str, Resource]:
    """Create the resources an event names and update their mailbox email when it changed.

    `entries` is {resource_no: email}. New resources start with sync off; a blank email never
    clears a known one; names and every setting an administrator made are left alone.
    Returns {resource_no: Resource} for every entry. One query when nothing changes.
    """
    if not entries:
        return {}
    known = {
        resource.resource_no: resource
        for resource in Resource.objects.filter(
            source_app=source_app, resource_no__in=list(entries)
        )
    }
    missing = [number for number in entries if number not in known]
    if missing:
        Resource.objects.bulk_create(
            [Resource(source_app=source_app, resource_no=number, email=entries[number])
             for number in missing],
            ignore_conflicts=True,  # a concurrent event may create the same resource
        )
        for resource in Resource.objects.filter(
            source_app=source_app, resource_no__in=missing
        ):
            known[resource.resource_no] = resource
    for number, email in entries.items():
        found = known.get(number)
        if found is not None and email and found.email.lower() != email.lower():
            found.email = email
            found.graph_user_id = ""  # another mailbox: look its id up again
            found.save(update_fields=["email", "graph_user_id", "updated_at"])
    return known


def shared_filters(
    resource: Resource, exchange_settings: ExchangeSettings
) -> tuple[frozenset[str], frozenset[str]]:
    """(show-as values, sensitivities) this resource shares with the planner: its own when it
    overrides the global default, else the default."""
    source: Any = resource if resource.privacy_override else exchange_settings
    return frozenset(source.shared_show_as or ()), frozenset(source.shared_sensitivities or ())


def mailbox_of(resource: Resource) -> str:
    """The mailbox segment for Graph URLs (/users/{this}/…): the Graph user id once known."""
    return resource.graph_user_id or resource.email


def mailbox_path(resource: Resource, tail: str = "events") -> str:
    """The Graph path of the resource's mailbox: `/users/{mailbox}/{tail}` (URL-quoted)."""
    return f"/users/{quote(mailbox_of(resource), safe='@')}/{tail}"


def synced(resources: Iterable[Resource]) -> list[Resource]:
    """The resources whose calendars are synced (sync on and a mailbox set)."""
    return [resource for resource in resources if resource.sync_enabled and resource.email]
