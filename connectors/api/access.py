"""Which source apps an API client may post for (DESIGN.md, API: 403 otherwise).

A client may post an event when the event's source app is one of its allowed source apps and
the appointment, when it exists already, belongs to one of them too: a client of source app B
cannot take over (or delete) an appointment of source app A by reusing its GUID.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.intake import IncomingEvent
from connectors.models import ApiClient

from .exceptions import SourceAppForbidden


def check_source_apps(
    client: ApiClient, events: Sequence[IncomingEvent], owners: Mapping[str, str], *,
    field: str = "appointment.source_app", indexed: bool = True,
) -> None:
    """Raise SourceAppForbidden (403) naming every source app the client may not post for.

    `owners` is {guid: source app} of the events' appointments already stored (the intake
    passes it from its locked read: `events_accept(authorize=…)`). `field` is the path of the
    source app in one item of the request body; with `indexed` the error keys start with the
    item's index (an array was posted).
    """
    fields: dict[str, list[str]] = {}
    forbidden: set[str] = set()
    for index, event in enumerate(events):
        key = f"{index}.{field}" if indexed else field
        source_app = event.appointment["source_app"]
        owner = owners.get(str(event.appointment["guid"]))
        if not client.allows(source_app):
            forbidden.add(source_app)
            fields.setdefault(key, []).append(
                f"This API client may not post for source app '{source_app}'."
            )
        elif owner is not None and not client.allows(owner):
            forbidden.add(owner)
            fields.setdefault(key, []).append(
                f"Appointment {event.appointment['guid']} belongs to source app '{owner}', "
                "which this API client may not post for."
            )
    if forbidden:
        names = ", ".join(sorted(forbidden))
        allowed = ", ".join(client.source_apps) or "none"
        raise SourceAppForbidden(
            f"This API client may not post for source app(s): {names} (allowed: {allowed}). "
            "Nothing was stored.",
            fields,
        )

