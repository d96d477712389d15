"""Reading connector files into specs for `services.connectors_upsert`.

`common` holds what both commands share (reading a file, JSON errors with a position, the upsert
with errors in input order, the report lines); `connectors_json` reads `apply_connectors` files
and `backoffices` the legacy "Multi back office" rows of `import_backoffices`. Nothing here
writes: the service does. No message built here ever holds a secret's value.
"""
