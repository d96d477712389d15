"""Webhook client: each change is a JSON POST signed per Standard Webhooks.

Body: payloads.webhook_body in the connector's payload style. Headers (Standard Webhooks,
https://www.standardwebhooks.com): `webhook-id` is the dispatch id, stable across retries, so a
receiver can drop a redelivery; `webhook-timestamp` is the send time in unix seconds (receivers
refuse stale ones, so it is fresh on every attempt); `webhook-signature` carries one `v1,…` per
signing secret (two during a rotation's overlap, see signing.py). The connector's own auth comes
on top.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from . import payloads, rest, signing
from .base import AppointmentChange, BackOfficeClient, BackOfficeError, ProbeResult, SendResult

WHAT = "The webhook receiver"
TEST_EVENT_TYPE = "connector.test"

AUTH_REFUSED_HINT = (
    "The receiver refused the request: check the connector's credentials, and that the "
    "receiver verifies signatures with this connector's current signing secret (after a "
    "rotation the new one; the old one keeps signing for 24 h)."
)


class WebhookClient(BackOfficeClient):
    """(webhook, rest): signed JSON POSTs to the connector's URI."""

    def send(self, change: AppointmentChange) -> SendResult:
        """POST the change through the connector's pooled client (kept-alive connections);
        returns the 2xx answer, raises BackOfficeError otherwise."""
        body = payloads.webhook_body(change, style=self.connector.payload_style)
        return self._post(body, msg_id=change.dispatch_id, pooled=True)

    def probe(self) -> ProbeResult:
        """POST a signed `connector.test` event that carries no business data."""
        now = datetime.now(UTC)
        event = {
            "type": TEST_EVENT_TYPE,
            "timestamp": payloads.iso_utc(now),
            "data": {"connector": self.connector.name},
        }
        result = self._post(event, msg_id=f"msg_test_{uuid.uuid4().hex}")
        return ProbeResult(
            detail=f"The receiver accepted a signed {TEST_EVENT_TYPE} event "
            f"(HTTP {result.status_code}).",
            status_code=result.status_code,
        )

    def _post(self, event: dict[str, Any], *, msg_id: str, pooled: bool = False) -> SendResult:
        content = rest.json_bytes(event)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, */*;q=0.5",
            **signing.headers(self._secrets(), msg_id, int(time.time()), content),
        }
        try:
            done = rest.exchange(
                self.connector, "POST", self.connector.uri,
                what=WHAT, content=content, headers=headers, pooled=pooled,
            )
        except BackOfficeError as exc:
            if exc.status_code in (401, 403):
                exc.hint = AUTH_REFUSED_HINT
            raise
        return SendResult(
            status_code=done.answer.status_code,
            response_excerpt=done.excerpt,
            duration_ms=done.answer.duration_ms,
            request=done.request,
        )

    def _secrets(self) -> list[str]:
        secrets = signing.signing_secrets(self.connector, datetime.now(UTC))
        problem = "" if secrets else "The webhook connector has no signing secret."
        for secret in secrets:
            try:
                signing.secret_key(secret)
            except ValueError as exc:
                problem = f"The webhook connector's signing secret is unusable: {exc}."
        if problem:
            raise BackOfficeError(
                problem,
                permanent=True,
                hint="Rotate the webhook signing secret (admin action) or enter a whsec_… "
                "secret, and give the receiver the new one.",
                error_class="ConfigurationError",
            )
        return secrets
