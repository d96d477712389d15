"""`GET /healthz`: database and broker reachability for load balancers and operators."""

from __future__ import annotations

import pytest


@pytest.mark.django_db
def test_healthz_reports_the_database_and_the_configured_broker(client, settings):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"]["ok"] is True
    assert body["broker"] == {"ok": True, "detail": "redis" if settings.REDIS_URL else "orm"}


@pytest.mark.django_db
def test_healthz_answers_503_when_the_redis_broker_is_unreachable(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == {"ok": False, "detail": "ConnectionError"}
