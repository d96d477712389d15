"""The app's own settings with one change for end-to-end runs: a namespace per run
(`E2E_RUN_NAME`) for everything the app keeps in a shared Redis.

- the django-q2 cluster name: the Redis broker's queue key (`django_q:<name>:q`) and stats
  prefix, so runs sharing one Redis server (CI, several engineers, a developer's own app) never
  take each other's tasks. django-q2's own `Q_CLUSTER_NAME` variable cannot do this without an
  `ALT_CLUSTERS` setting (django_q.conf pops that key unconditionally), hence this overlay;
- the key prefix of the API's `throttle` cache, so runs do not share rate counters (API
  clients of different runs have the same primary keys).

With the ORM broker and no REDIS_URL every run has its own database anyway; nothing changes.
"""

from __future__ import annotations

import os

from dimeconnect.settings import *  # noqa: F403
from dimeconnect.settings import CACHES as _APP_CACHES
from dimeconnect.settings import Q_CLUSTER as _APP_Q_CLUSTER

_RUN = os.environ.get("E2E_RUN_NAME", "")

Q_CLUSTER = {**_APP_Q_CLUSTER, "name": _RUN or _APP_Q_CLUSTER["name"]}
CACHES = {
    alias: {**cache, "KEY_PREFIX": _RUN} if _RUN and "KEY_PREFIX" in cache else cache
    for alias, cache in _APP_CACHES.items()
}
