"""Back-office clients: one module per protocol (webhook, bc_rest, soap) and one for auth.

`registry.client_for(connector)` gives the client for a connector; every client raises only
`base.BackOfficeError`, whose message is safe to show an administrator.
"""
