"""Deliveries per hour as a small inline SVG bar chart, drawn on the server (no script, no CDN).

Accessible: the chart is an `img` labelled by its <title> and described by its <desc> (the
text summary, which the page also shows beside it); every bar has its own <title> (hour,
succeeded, failed), which browsers show as a tooltip. The markup is built from numbers and
escaped text only (a page draws twenty of these, so no template engine per bar).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 240
HEIGHT = 48
AXIS = 12  # room for the labels below the bars
GAP = 1.0
OK_COLOUR = "#3a9a57"
FAILED_COLOUR = "#c6362f"
AXIS_COLOUR = "#d5d5d5"


def hour_labels(start: datetime, hours: int) -> list[str]:
    """"09:05–10:05" for each hour from `start`, in the current time zone."""
    local = timezone.localtime(start)
    return [f"{local + timedelta(hours=i):%H:%M}–{local + timedelta(hours=i + 1):%H:%M}"
            for i in range(hours)]


def summary(buckets: Sequence[tuple[int, int]], labels: Sequence[str]) -> str:
    """One sentence for screen readers and the page: totals, the busiest hour, the hour with
    the most failures."""
    succeeded = sum(ok for ok, _ in buckets)
    failed = sum(bad for _, bad in buckets)
    if not succeeded + failed:
        return "No finished deliveries in the last 24 hours."
    busiest = max(range(len(buckets)), key=lambda i: (sum(buckets[i]), i))
    text = (f"{succeeded} succeeded and {failed} failed in the last 24 hours; busiest hour "
            f"{labels[busiest]} with {sum(buckets[busiest])}")
    worst = max(range(len(buckets)), key=lambda i: (buckets[i][1], i))
    if buckets[worst][1]:
        text += f"; most failures {labels[worst]} ({buckets[worst][1]})"
    return text + "."


def _rect(x: float, y: float, width: float, height: float, colour: str) -> str:
    if height <= 0:
        return ""
    return (f'<rect x="{x:.1f}" y="{y:.2f}" width="{width:.1f}" height="{height:.2f}" '
            f'fill="{colour}"/>')


def _bars(buckets: Sequence[tuple[int, int]], labels: Sequence[str]) -> str:
    base = HEIGHT - AXIS
    peak = max((ok + bad for ok, bad in buckets), default=0)
    scale = (base - 2) / peak if peak else 0.0
    step = WIDTH / max(len(buckets), 1)
    parts = []
    for i, (ok, bad) in enumerate(buckets):
        x, ok_h, bad_h = i * step + GAP / 2, ok * scale, bad * scale
        parts.append(
            f'<g class="dc-bar" data-hour="{i}" data-succeeded="{ok}" data-failed="{bad}">'
            f"<title>{escape(labels[i])}: {ok} succeeded, {bad} failed</title>"
            f"{_rect(x, base - ok_h, step - GAP, ok_h, OK_COLOUR)}"
            f"{_rect(x, base - ok_h - bad_h, step - GAP, bad_h, FAILED_COLOUR)}</g>"
        )
    return "".join(parts)


def hourly_chart(buckets: Sequence[tuple[int, int]], *, labels: Sequence[str], title: str,
                 chart_id: str) -> SafeString:
    """Stacked bars (succeeded below, failed above), one (succeeded, failed) pair per hour,
    oldest first; `labels` names each hour, `title` the chart, `chart_id` is unique on the
    page."""
    chart_id, base = escape(chart_id), HEIGHT - AXIS
    first = escape(labels[0].split("–")[0]) if labels else ""
    return mark_safe(  # numbers and escaped text only
        f'<svg class="dc-chart" id="{chart_id}" role="img" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(summary(buckets, labels))}</desc>'
        f'<line x1="0" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="{AXIS_COLOUR}"/>'
        f"{_bars(buckets, labels)}"
        f'<text x="0" y="{HEIGHT - 1}" font-size="9" fill="currentColor">{first}</text>'
        f'<text x="{WIDTH}" y="{HEIGHT - 1}" font-size="9" fill="currentColor" '
        'text-anchor="end">now</text></svg>'
    )
