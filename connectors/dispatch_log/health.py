"""/dispatches/health/: how each connector is doing, for support staff (`view_dispatch`), and
"Resume" of a quarantined connector for those who may change connectors (`change_connector`).

The figures come from health_selectors (a fixed number of queries); this module only words
them. Error texts are redacted once more with the connector's secrets before they are shown,
as on the other dispatch log pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString
from django.views.decorators.http import require_http_methods

from connectors import delivery
from connectors.backoffices.redact import redactor_for
from connectors.models import Connector

from . import svg
from .access import VIEW_PERMISSION, forbidden, page_context, support_view
from .health_selectors import HOURS, ConnectorHealth, LastError, WindowStats, connector_health

RESUME_PERMISSION = "connectors.change_connector"


def duration(ms: int | None) -> str:
    """A latency for people: "850 ms", "4.2 s", "12 min", "3.5 h", "2.1 d"; "–" for none."""
    if ms is None:
        return "–"
    for limit, unit, size in ((1000, "ms", 1), (60_000, "s", 1000), (3_600_000, "min", 60_000),
                              (86_400_000, "h", 3_600_000)):
        if ms < limit:
            value = ms / size
            return f"{value:.0f} {unit}" if unit == "ms" or value >= 10 else f"{value:.1f} {unit}"
    return f"{ms / 86_400_000:.1f} d"


@dataclass
class WindowRow:
    rate: str
    counts: str
    failed_attempts: int
    p50: str
    p95: str
    css: str


@dataclass
class Row:
    health: ConnectorHealth
    day: WindowRow
    week: WindowRow
    chart: SafeString
    chart_summary: str
    last_error: LastError | None
    quarantine_reason: str

    @property
    def windows(self) -> tuple[tuple[str, WindowRow], ...]:
        return (("day", self.day), ("week", self.week))


def window_row(stats: WindowStats) -> WindowRow:
    rate = stats.success_rate
    return WindowRow(
        rate="–" if rate is None else f"{rate:.1f} %",
        counts=f"{stats.succeeded} succeeded, {stats.failed} failed",
        failed_attempts=stats.failed_attempts,
        p50=duration(stats.p50_ms),
        p95=duration(stats.p95_ms),
        css="dc-off" if rate is None else "dc-ok" if rate >= 99 else
        "dc-unknown" if rate >= 90 else "dc-fail",
    )


def row(item: ConnectorHealth, labels: list[str]) -> Row:
    connector, error = item.connector, item.last_error
    redactor = redactor_for(connector)
    if error is not None:
        error.message = redactor.text(error.message)
        error.hint = redactor.text(error.hint)
    name = connector.name
    return Row(
        health=item,
        day=window_row(item.day),
        week=window_row(item.week),
        chart=svg.hourly_chart(item.hours, labels=labels, chart_id=f"chart-{item.connector.pk}",
                               title=f"Deliveries per hour over the last 24 hours: {name}"),
        chart_summary=svg.summary(item.hours, labels),
        last_error=error,
        quarantine_reason=redactor.text(connector.quarantine_reason),
    )


@require_http_methods(["GET", "POST"])
@support_view(VIEW_PERMISSION)
def health_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _resume(request)
    health = connector_health()
    labels = svg.hour_labels(health.day_start, HOURS)
    context = page_context(
        request, title="Connector health", health=health,
        rows=[row(item, labels) for item in health.connectors],
        may_resume=request.user.has_perm(RESUME_PERMISSION),
    )
    return render(request, "dispatch_log/health.html", context)


def _resume(request: HttpRequest) -> HttpResponse:
    """Lift a connector's quarantine (delivery.connector_resume) and say what happened."""
    if not request.user.has_perm(RESUME_PERMISSION):
        return forbidden(request, RESUME_PERMISSION)
    back = reverse("dispatch_log:health")
    raw = request.POST.get("connector", "")
    connector = (
        Connector.objects.only("id", "name", "quarantined_at").filter(pk=raw).first()
        if raw.isdigit() else None
    )
    if connector is None:
        messages.error(request, "Nothing was resumed: that connector does not exist (any more).")
        return redirect(back)
    if connector.quarantined_at is None:
        messages.warning(
            request, f"{connector.name} is not quarantined (any more); nothing to resume."
        )
    else:
        due = delivery.connector_resume(connector, user=request.user)
        messages.success(
            request,
            f"Resumed {connector.name}: {due} held dispatch(es) are due now and go out within "
            "a minute.",
        )
    return redirect(f"{back}#connector-{connector.pk}")
