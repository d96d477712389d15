"""Per-client request rate (settings.API_RATE, e.g. "600/min"; empty turns it off).

Counted in the `throttle` cache: Redis when REDIS_URL is set (shared by every web process),
otherwise process memory (each web process counts on its own). Over the rate DRF answers 429
with Retry-After. When the cache cannot be reached the request is let through (and logged):
a broken counter must not stop the back offices.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import BaseCache, caches
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from .authentication import client_of

logger = logging.getLogger("connectors.api")

THROTTLE_CACHE = "throttle"


class ApiClientRateThrottle(SimpleRateThrottle):
    scope = "api"

    def __init__(self) -> None:
        super().__init__()
        self.cache: BaseCache = caches[THROTTLE_CACHE]

    def get_rate(self) -> str | None:
        return settings.API_RATE or None

    def get_cache_key(self, request: Request, view: Any) -> str:
        client = client_of(request)
        if client is not None:
            ident = f"client-{client.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:  # the cache backend is down (e.g. Redis); fail open
            logger.warning("API rate limit not checked: the throttle cache failed", exc_info=True)
            return True
