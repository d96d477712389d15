"""The HTTP API (DESIGN.md, API): appointment events in, Dime.Scheduler's webhook body in, the
dispatch list out; OpenAPI at /api/schema/. Views are interfaces: they parse, call
connectors.intake, and answer; every error has the one shape of `errors.py`."""
