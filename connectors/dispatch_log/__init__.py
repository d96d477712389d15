"""The dispatch log for support staff (DESIGN.md, Dispatch log; docs/DISPATCH_LOG.md).

`/dispatches/`: the filtered list with counts per status and a CSV export; `/dispatches/<id>/`:
one dispatch with its event, payload, attempts, siblings, action URIs, "Retry now" and
"Copy as cURL". Reads are in selectors.py, what the pages show (redacted) in present.py; the
one write, a retry, goes through connectors.delivery.dispatches_retry.
"""
