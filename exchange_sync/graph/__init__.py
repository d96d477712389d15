"""Microsoft Graph for Exchange sync: `GraphClient` and its one error type, `GraphError`.

    with GraphClient.from_settings(exchange_settings) as graph:
        user = graph.user("anna@contoso.com")
        for page in graph.pages(f"/users/{user['id']}/calendarView/delta", params=window):
            ...
        results = graph.batch([BatchItem("1", "POST", f"/users/{user['id']}/events", body)])

See docs/EXCHANGE.md ("Microsoft Graph client").
"""

from .client import (
    GRAPH_SCOPE_DEFAULT,
    MAX_BATCH,
    PREFER,
    BatchItem,
    BatchResult,
    GraphClient,
    GraphResponse,
    scope_for,
    with_prefer,
)
from .errors import GraphError, mailbox_in

__all__ = [
    "GRAPH_SCOPE_DEFAULT",
    "MAX_BATCH",
    "PREFER",
    "BatchItem",
    "BatchResult",
    "GraphClient",
    "GraphError",
    "GraphResponse",
    "mailbox_in",
    "scope_for",
    "with_prefer",
]
