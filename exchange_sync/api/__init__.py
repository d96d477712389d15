"""The HTTP endpoints Microsoft Graph calls: change and lifecycle notifications
(/api/v1/exchange/notifications/ and /api/v1/exchange/lifecycle/)."""
