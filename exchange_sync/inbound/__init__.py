"""Outlook → planner (DESIGN.md, Exchange sync): delta rounds per mailbox.

- `schedule_round(resource_id, full=, delay_s=)`: a debounced round (notifications, a 412 on the
  outbound side, an administrator);
- `run_round(resource, full=, client=)`: one round now (one per mailbox at a time);
- `due_rounds()`: the every-minute schedule (due, safety and window rounds);
- `held_deletions_confirm` / `held_deletions_discard`: the administrator's answer to the
  mass-deletion guard.

Modules: `read` (calendarView delta), `mapping` (an event as an appointment, privacy filters),
`apply` (through intake, links, conflicts), `guard` (mass deletions), `schedule` (debounce,
lock, due rounds), `rounds` (one round). See docs/EXCHANGE.md ("Inbound: delta rounds, privacy
and conflicts").
"""

from .due import delta_round, due_rounds
from .guard import MailboxBusy, held_deletions_confirm, held_deletions_discard
from .rounds import RoundSummary, run_round
from .schedule import schedule_round

__all__ = [
    "MailboxBusy", "RoundSummary", "delta_round", "due_rounds", "held_deletions_confirm",
    "held_deletions_discard", "run_round", "schedule_round",
]
