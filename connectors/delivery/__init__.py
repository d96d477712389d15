"""Delivering dispatches: claim, send, record, retry, order, coalesce, quarantine, sweep.

A dispatch is sent by whoever claims it: normally a connector's backlog task, which sends all
of that connector's due dispatches and is queued after commit unless one is waiting already
(`ring`); the sweeper (every minute) rings for connectors whose message was lost, whose retry is
due, or whose worker died (its lease expired). A backlog task claims a page of chain heads at
once; claiming locks the rows (`select_for_update(skip_locked=True)` on PostgreSQL; SQLite's
IMMEDIATE transactions serialise writers), so no two workers send one dispatch at once, however
many backlog tasks run. Delivery is at least once: a worker killed after sending but before
recording sends again after the lease; receivers drop duplicates by the stable dispatch id.

Order: a dispatch is sent only when no earlier dispatch of the same appointment to the same
connector is still open, so a create is never overtaken by its update or delete. An update with
newer updates queued behind it is coalesced into the newest (only the newest state is sent).

The package: `common` (queueing, locks, the attempt log), `claiming`, `sending` (attempt and
record), `operations` (the sweeper, retry, quarantine, resume).
"""

from .claiming import claim
from .common import lease_seconds, ring
from .operations import connector_quarantine, connector_resume, dispatches_retry, sweep
from .sending import deliver, deliver_backlog, retry_delay

__all__ = [
    "claim",
    "connector_quarantine",
    "connector_resume",
    "deliver",
    "deliver_backlog",
    "dispatches_retry",
    "lease_seconds",
    "retry_delay",
    "ring",
    "sweep",
]
