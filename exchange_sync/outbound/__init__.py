"""Planner → Outlook (DESIGN.md, Exchange sync): bring each appointment's Outlook events up to
date in the mailboxes of its assigned resources with sync on and passing rules.

- `queue`: the outbound queue (PendingSync): marking appointments, claiming them, the doorbell;
- `render`: an appointment as a Graph event, and the hash that says whether it changed;
- `plan`: what each claimed appointment needs (create, update, delete, nothing);
- `push`: doing it through Graph `$batch`, with the follow-ups (412, 404) and the bookkeeping;
- `reconcile`: a full pass over a mailbox for events of ours that have no link.
"""

from .push import PushSummary, push_pending
from .queue import appointments_changed, mark_pending, queue_push

__all__ = ["PushSummary", "appointments_changed", "mark_pending", "push_pending", "queue_push"]
