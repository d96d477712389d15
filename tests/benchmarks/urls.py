"""The project's URLs plus the benchmarks' baselines (used only by the benchmarks).

- `__benchmark__/baseline/`: the dispatch log pages' baseline (tests/benchmarks/dispatch_log.py).
- `__benchmark__/insert/`: the event intake's baseline (tests/benchmarks/intake.py): a POST
  checked against one fixed key and stored as one row per event, of about an AppointmentEvent's
  size, in a small table of its own (`bench_baseline_event`, created by the benchmark), in one
  transaction, and nothing else. It takes one event object or a list (the bulk baseline).
"""

from __future__ import annotations

import json
import os

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from connectors.dispatch_log.access import VIEW_PERMISSION, page_context, support_view
from dimeconnect.urls import urlpatterns as project_urlpatterns

BASELINE_TABLE = "bench_baseline_event"
BASELINE_KEY_ENV = "BENCH_BASELINE_KEY"


@support_view(VIEW_PERMISSION)
def baseline(request: HttpRequest) -> HttpResponse:
    """The cheapest page with everything the measured pages share: the middleware, the session
    and login, the permission check and the admin's frame (admin/base_site.html)."""
    return render(request, "admin/base_site.html", page_context(request, title="Baseline"))


@csrf_exempt
def baseline_insert(request: HttpRequest) -> JsonResponse:
    """One event in, one row out: what any intake must at least do (parse, check a key,
    insert, commit), and nothing more."""
    expected = "Bearer " + os.environ.get(BASELINE_KEY_ENV, "")
    if request.method != "POST" or request.headers.get("Authorization") != expected:
        return JsonResponse({"error": "no"}, status=401)
    data = json.loads(request.body)
    events = data if isinstance(data, list) else [data]
    now = timezone.now().isoformat()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {BASELINE_TABLE} (event_id, action, occurred_at, payload, received_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            [(e["event_id"], e["action"], e["occurred_at"], json.dumps(e["appointment"]), now)
             for e in events],
        )
    return JsonResponse({"results": [{"event_id": e["event_id"], "status": "accepted"}
                                     for e in events]}, status=202)


urlpatterns = [
    path("__benchmark__/baseline/", baseline),
    path("__benchmark__/insert/", baseline_insert),
    *project_urlpatterns,
]
