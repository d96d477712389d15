"""Exchange sync: the Graph connection, resources' mailboxes and rules, and the sync state.

- `ExchangeSettings` (one row): the Entra application that reads and writes the mailboxes, the
  sync window, the global privacy filters and the safety limits.
- `Resource` and its `OutboundRule`s: whose mailbox, what is shared with the planner (inbound
  privacy filters), which appointments go to Outlook (outbound rules).
- `EventLink`: one appointment ↔ one Outlook event in one resource's mailbox.
- `PendingSync`: the outbound work queue (appointments whose events must be brought up to date).
- `Subscription`, `Notification`, `MailboxState`: the inbound side (Graph change
  notifications and calendarView delta rounds).
- `SyncLogEntry`: what the sync did that someone may ask about (errors, conflicts, holds).
"""

from .resources import OutboundRule, Resource, RuleMatch, RuleOperator
from .settings import ExchangeSettings, Sensitivity, ShowAs
from .sync import (
    EventLink,
    LinkOrigin,
    MailboxState,
    Notification,
    PendingSync,
    Subscription,
    SyncDirection,
    SyncLogEntry,
)

__all__ = [
    "EventLink",
    "ExchangeSettings",
    "LinkOrigin",
    "MailboxState",
    "Notification",
    "OutboundRule",
    "PendingSync",
    "Resource",
    "RuleMatch",
    "RuleOperator",
    "Sensitivity",
    "ShowAs",
    "Subscription",
    "SyncDirection",
    "SyncLogEntry",
]
