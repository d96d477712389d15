"""Settings follow the environment: the database and the django-q2 broker."""

from __future__ import annotations

import os

from django.conf import settings
from django.db import connection


def test_the_database_is_the_one_database_url_names():
    url = os.environ.get("DATABASE_URL", "")
    expected = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
    assert connection.vendor == expected


def test_the_broker_is_redis_when_redis_url_is_set_and_the_database_otherwise():
    if os.environ.get("REDIS_URL"):
        assert settings.Q_CLUSTER["redis"] == os.environ["REDIS_URL"]
        assert "orm" not in settings.Q_CLUSTER
    else:
        assert settings.Q_CLUSTER["orm"] == "default"
