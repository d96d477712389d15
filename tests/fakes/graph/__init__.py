"""A stateful fake Microsoft Graph (and Entra ID token endpoints) over HTTPS on 127.0.0.1.

One server answers what DimeConnect's Exchange sync calls, so ENTRA_AUTHORITY_HOST = server.url
and GRAPH_BASE_URL = server.url + "/v1.0":
- Entra ID (inherited from tests.fakes.token_server): `/{tenant}/v2.0/.well-known/openid-
  configuration`, `/{tenant}/oauth2/v2.0/token` (tenant/client/secret: TENANT, CLIENT_ID,
  CLIENT_SECRET).
- Graph v1.0, every call with a valid Bearer token whose scope ends in "/.default" (else 401
  InvalidAuthenticationToken): `GET /users/{id|email}`; `GET|POST /users/{u}/events` (`$top`,
  `$skip`, and only `$filter=singleValueExtendedProperties/Any(ep: ep/id eq '…' and ep/value eq
  '…')`); `GET|PATCH|DELETE /users/{u}/events/{id}` (If-Match → 412 ErrorIrresolvableConflict);
  `GET /users/{u}/calendarView?startDateTime=&endDateTime=`; `GET /users/{u}/calendarView/delta`
  (`Prefer: odata.maxpagesize=N`, `$skiptoken` nextLinks, `$deltatoken` deltaLinks);
  `POST /$batch` (≤ 20 items, each routed as a direct call); `GET|POST /subscriptions`,
  `GET|PATCH|DELETE /subscriptions/{id}`.
- Behaviour as real Graph: `transactionId` de-duplicates POSTs per mailbox; every change issues
  a new changeKey / `@odata.etag` (`W/"<changeKey>"`) and lastModifiedDateTime;
  singleValueExtendedProperties are returned only when `$expand`ed by id; recurring series
  (daily/weekly) appear in calendarView and delta as occurrences; delta reports changed items
  in full and deleted or out-of-window ones as `{"id", "@removed": {"reason": "deleted"}}`;
  an expired sync state answers 410 `SyncStateNotFound` "The sync state generation is not
  found." (Outlook's casing; other workloads say syncStateNotFound / resyncRequired).
  Subscriptions are validated by POSTing `notificationUrl?validationToken=…` (text/plain,
  URL-encoded token with spaces) and expecting 200 echoing it within 10 s; expirations beyond
  4230 minutes or in the past answer 400 ExtensionError. Event changes post change
  notifications to live subscriptions from a background thread.
- Not modelled: Windows time zone names (IANA and UTC only), monthly/yearly recurrence,
  exceptions to a series (PATCH of an occurrence), `$batch` dependsOn (items run in order).

State (`server.state`, a GraphState): `add_user(email, display_name="") -> id`, `events(mailbox)`,
`outlook_create(mailbox, **fields)`, `outlook_update(mailbox, id, **fields)`,
`outlook_delete(mailbox, id)` (the mailbox owner in Outlook: bump changeKey, feed delta, notify).
Faults: `consent = False` (403 ErrorAccessDenied), `blocked_mailboxes` (403 RAOP access
policy), `latency_s`, `throttle(count, retry_after_s=1, status=429)`, `fail_item(match,
status=500, count=1)`, `expire_delta_tokens()`, `revoke_tokens()` (401 for tokens seen so
far), `refuse_tokens` (401 for all), `drop_notifications`, `expire_subscription(id)`,
`send_lifecycle(id, event)`.
Records: `request_count` (/v1.0 HTTP requests; $batch = 1), `batch_items`, `prefer_missing`,
`calls` (GraphCall per call and batch item: method, url, batch_item, prefer_ok, status),
`token_requests`, `notifications_sent` (+ `wait_notifications(n)`), `reset_counters()`.

Run alone (prints HTTP_CA_BUNDLE, ENTRA_AUTHORITY_HOST, GRAPH_BASE_URL, the app and mailboxes):

    python -m tests.fakes.graph --port 8200 [--latency-ms 50] [--user anna@contoso.test ...]

Controls over HTTP for a standalone run (JSON bodies, no auth):
    GET  /_control/stats                        counters, users, subscriptions
    POST /_control/users {"email", "display_name"}        → {"id"}
    POST /_control/latency {"seconds"}     /throttle {"count", "retry_after_s", "status"}
    POST /_control/fail {"match", "status", "count"}      /consent {"granted"}
    POST /_control/block {"mailbox"}       /drop-notifications {"drop"}
    POST /_control/expire-delta            /revoke-tokens            /reset-counters
    GET|POST /_control/outlook/{mailbox}/events   PATCH|DELETE …/events/{id}
    POST /_control/subscriptions/{id}/lifecycle {"event"}   POST …/subscriptions/{id}/expire
"""

from ..token_server import CLIENT_ID, CLIENT_SECRET, TENANT
from .handler import GraphHandler, build, make, settings_lines, stats
from .routes import Answer, Call, route
from .state import GraphCall, GraphState, Subscription, render

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "TENANT",
    "Answer",
    "Call",
    "GraphCall",
    "GraphHandler",
    "GraphState",
    "Subscription",
    "build",
    "make",
    "render",
    "route",
    "settings_lines",
    "stats",
]
