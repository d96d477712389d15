"""/dispatches/health/: who may see and resume, the figures on a hand-made log, the chart,
quarantine, a bounded number of queries, and no secret on the page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from connectors.dispatch_log import health_selectors
from connectors.dispatch_log.health import duration
from connectors.models import Attempt, Connector, Dispatch
from tests.connectors.pipeline_factories import AttemptFactory, ConnectorFactory, DispatchFactory

from .conftest import SECRETS

pytestmark = pytest.mark.django_db

URL = "/dispatches/health/"
SECOND = timedelta(seconds=1)


def dispatch(connector, *, status, age, latency=None, **fields):
    """A dispatch created `age` ago; a succeeded one delivered `latency` after that."""
    row = DispatchFactory(connector=connector, status=status, next_attempt_at=None, **fields)
    created = timezone.now() - age
    delivered = created + latency if latency is not None else None
    Dispatch.objects.filter(pk=row.pk).update(created_at=created, delivered_at=delivered)
    row.created_at, row.delivered_at = created, delivered
    return row


def attempt(row, *, ago, outcome="retry", **fields):
    return AttemptFactory(dispatch=row, outcome=outcome,
                          started_at=timezone.now() - ago, **fields)


def quarantine(connector, *, reason="Every delivery failed for 5 day(s).", days=1):
    Connector.objects.filter(pk=connector.pk).update(
        quarantined_at=timezone.now() - timedelta(days=days),
        failing_since=timezone.now() - timedelta(days=days + 5), quarantine_reason=reason,
    )
    connector.refresh_from_db()
    return connector


@pytest.fixture
def quarantined():
    connector = quarantine(ConnectorFactory(name="NAV held"))
    for status in ("retrying", "pending", "retrying"):
        dispatch(connector, status=status, age=timedelta(hours=30))
    dispatch(connector, status="failed", age=timedelta(days=2))  # closed: not held
    return connector


@pytest.fixture
def admin_user():
    return get_user_model().objects.create_superuser("ada", "ada@example.test", "pw-ada-1234")


@pytest.fixture
def admin_web(client, admin_user):
    client.force_login(admin_user)
    return client


def rows_of(response):
    return {item.connector.name: item for item in response.context["health"].connectors}


# --- Who may see and resume ---------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_the_admin_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={URL}"


def test_an_anonymous_resume_changes_nothing(client, quarantined):
    response = client.post(URL, {"connector": quarantined.pk})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    quarantined.refresh_from_db()
    assert quarantined.quarantined_at is not None


def test_a_user_without_the_permission_gets_a_403_that_names_it(client):
    client.force_login(get_user_model().objects.create_user("nina", is_staff=True))
    response = client.get(URL)
    assert response.status_code == 403
    assert "connectors.view_dispatch" in response.content.decode()


def test_support_sees_the_quarantine_but_no_resume_button(support_client, quarantined):
    response = support_client.get(URL)

    assert response.status_code == 200
    text = response.content.decode()
    assert f'id="quarantine-{quarantined.pk}"' in text
    assert 'class="button dc-resume"' not in text and f'id="resume-{quarantined.pk}"' not in text
    assert "An administrator (permission to change connectors) can resume it." in text


def test_support_cannot_resume_by_posting(support_client, quarantined):
    response = support_client.post(URL, {"connector": quarantined.pk})

    assert response.status_code == 403
    assert "connectors.change_connector" in response.content.decode()
    quarantined.refresh_from_db()
    assert quarantined.quarantined_at is not None
    assert not Attempt.objects.filter(outcome="requested").exists()


def test_an_admin_resumes_a_quarantined_connector(admin_web, quarantined):
    page = admin_web.get(URL).content.decode()
    assert f'id="resume-{quarantined.pk}"' in page and "csrfmiddlewaretoken" in page

    response = admin_web.post(URL, {"connector": quarantined.pk}, follow=True)

    assert response.redirect_chain == [(f"{URL}#connector-{quarantined.pk}", 302)]
    assert "Resumed NAV held: 3 held dispatch(es) are due now" in response.content.decode()
    quarantined.refresh_from_db()
    assert quarantined.quarantined_at is None and quarantined.quarantine_reason == ""
    assert Attempt.objects.get(outcome="requested").user == "ada"
    assert f'id="quarantine-{quarantined.pk}"' not in response.content.decode()


def test_resuming_a_connector_that_is_not_quarantined_says_so(admin_web):
    connector = ConnectorFactory(name="BC fine")
    response = admin_web.post(URL, {"connector": connector.pk}, follow=True)
    assert "BC fine is not quarantined (any more); nothing to resume." in (
        response.content.decode())
    assert not Attempt.objects.exists()


@pytest.mark.parametrize("value", ["999999", "abc", ""])
def test_resuming_an_unknown_connector_says_so(admin_web, value):
    response = admin_web.post(URL, {"connector": value}, follow=True)
    assert response.status_code == 200
    assert "Nothing was resumed: that connector does not exist (any more)." in (
        response.content.decode())


def test_the_resume_form_needs_its_csrf_token(admin_user, quarantined):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(URL, {"connector": quarantined.pk}).status_code == 403
    quarantined.refresh_from_db()
    assert quarantined.quarantined_at is not None


# --- The figures ----------------------------------------------------------------------------------


@pytest.fixture
def log():
    """BC prod: in the last 24 h 20 succeeded dispatches (1 s … 20 s) and 2 failed; 3 days
    ago 10 succeeded (100 s each) and 3 failed; 8 days ago 1 failed (outside every window).
    NAV other: one succeeded dispatch, and the newest failed attempt of all (not BC prod's)."""
    bc = ConnectorFactory(name="BC prod")
    for seconds in range(1, 21):
        dispatch(bc, status="succeeded", age=timedelta(hours=2, minutes=seconds),
                 latency=seconds * SECOND)
    failed = [dispatch(bc, status="failed", age=timedelta(minutes=30)) for _ in range(2)]
    for _ in range(10):
        dispatch(bc, status="succeeded", age=timedelta(days=3), latency=100 * SECOND)
    old = [dispatch(bc, status="failed", age=timedelta(days=3)) for _ in range(3)]
    dispatch(bc, status="failed", age=timedelta(days=8))
    dispatch(bc, status="retrying", age=timedelta(minutes=5))  # open: in no rate
    attempt(old[0], ago=timedelta(days=3), outcome="failed")
    attempt(old[1], ago=timedelta(days=8), outcome="failed")  # outside the 7 days
    attempt(failed[0], ago=timedelta(minutes=29), outcome="retry")
    attempt(failed[0], ago=timedelta(minutes=20), outcome="failed", status_code=401,
            error_class="HTTPStatusError", message="The back office answered 401 Unauthorized.",
            hint="Check the connector's login and password.")
    attempt(failed[1], ago=timedelta(minutes=10), outcome="succeeded", status_code=200,
            message="Delivered.", hint="")  # newer, but not an error
    nav = ConnectorFactory(name="NAV other", source_app="NAVPROD")
    other = dispatch(nav, status="succeeded", age=timedelta(hours=1), latency=SECOND)
    attempt(other, ago=timedelta(minutes=5), outcome="retry", message="NAV timeout")
    return bc


def test_success_rates_count_finished_dispatches_per_window(log):
    health = health_selectors.connector_health()
    bc = next(item for item in health.connectors if item.connector.name == "BC prod")

    assert (bc.day.succeeded, bc.day.failed) == (20, 2)
    assert bc.day.success_rate == pytest.approx(100 * 20 / 22)
    assert (bc.week.succeeded, bc.week.failed) == (30, 5)
    assert bc.week.success_rate == pytest.approx(100 * 30 / 35)


def test_failed_attempts_count_retried_and_final_failures_per_window(log):
    health = health_selectors.connector_health()
    bc = next(item for item in health.connectors if item.connector.name == "BC prod")
    assert (bc.day.failed_attempts, bc.week.failed_attempts) == (2, 3)


def test_latency_percentiles_are_exact_nearest_ranks(log):
    health = health_selectors.connector_health()
    bc, nav = (next(i for i in health.connectors if i.connector.name == name)
               for name in ("BC prod", "NAV other"))

    # 24 h: 1 … 20 s; p50 is the 10th value, p95 the 19th.
    assert (bc.day.p50_ms, bc.day.p95_ms) == (10_000, 19_000)
    # 7 days: those and ten of 100 s (30 values): the 15th and the 29th.
    assert (bc.week.p50_ms, bc.week.p95_ms) == (15_000, 100_000)
    assert (nav.day.p50_ms, nav.day.p95_ms) == (1000, 1000)


def test_the_last_error_is_the_newest_failed_attempt_of_that_connector(log):
    health = health_selectors.connector_health()
    bc = next(item for item in health.connectors if item.connector.name == "BC prod")

    error = bc.last_error
    assert error is not None
    assert (error.outcome, error.status_code, error.error_class) == (
        "failed", 401, "HTTPStatusError")
    assert error.message == "The back office answered 401 Unauthorized."
    assert error.hint == "Check the connector's login and password."


def test_the_last_error_may_be_older_than_the_windows(support_client):
    connector = ConnectorFactory(name="BC stale")
    row = dispatch(connector, status="failed", age=timedelta(days=30))
    attempt(row, ago=timedelta(days=30), outcome="failed", message="Gone for a month.")

    bc = health_selectors.connector_health().connectors[0]

    assert bc.week.failed_attempts == 0 and bc.last_error.message == "Gone for a month."
    assert "Gone for a month." in support_client.get(URL).content.decode()


def test_the_page_shows_the_figures_in_words(support_client, log):
    text = support_client.get(URL).content.decode()
    row = text[text.index(f'id="connector-{log.pk}"'):]
    row = row[:row.index("</tr>")]

    assert '<span class="dc-status dc-unknown dc-rate">90.9 %</span>' in row
    assert '<span class="dc-status dc-fail dc-rate">85.7 %</span>' in row
    assert "20 succeeded, 2 failed" in row and "30 succeeded, 5 failed" in row
    assert '<span class="dc-p50">10 s</span> / <span class="dc-p95">19 s</span>' in row
    assert '<span class="dc-p50">15 s</span> / <span class="dc-p95">1.7 min</span>' in row
    assert "The back office answered 401 Unauthorized." in row
    assert "<strong>What to do:</strong> Check the connector&#x27;s login and password." in row
    assert "NAV timeout" not in row


def test_the_chart_has_one_bar_per_hour_with_succeeded_and_failed(support_client, log):
    text = support_client.get(URL).content.decode()
    chart = re.search(rf'<svg class="dc-chart" id="chart-{log.pk}".*?</svg>', text, re.S)[0]
    bars = {int(hour): (int(ok), int(bad)) for hour, ok, bad in re.findall(
        r'data-hour="(\d+)" data-succeeded="(\d+)" data-failed="(\d+)"', chart)}

    assert sorted(bars) == list(range(24))
    assert bars[23] == (0, 2)  # the two failed 30 minutes ago
    assert bars[21] == (20, 0)  # succeeded 2 h 1 min … 2 h 20 min ago
    assert sum(ok for ok, _ in bars.values()) == 20 and sum(b for _, b in bars.values()) == 2
    assert 'role="img"' in chart and f'aria-labelledby="chart-{log.pk}-title' in chart
    assert "<title id=" in chart and "Deliveries per hour over the last 24 hours: BC prod" in chart
    summary = "20 succeeded and 2 failed in the last 24 hours"
    assert f"<desc id=\"chart-{log.pk}-desc\">{summary}" in chart
    assert f'<p class="dc-chart-summary dc-quiet">{summary}' in text


def test_a_connector_without_dispatches_shows_dashes_and_no_error(support_client):
    connector = ConnectorFactory(name="BC quiet")
    text = support_client.get(URL).content.decode()
    row = text[text.index(f'id="connector-{connector.pk}"'):]
    row = row[:row.index("</tr>")]
    assert row.count('<span class="dc-status dc-off dc-rate">–</span>') == 2
    assert "No finished deliveries in the last 24 hours." in row
    assert '<span class="dc-quiet">None</span>' in row


def test_enabled_connectors_come_first(support_client):
    ConnectorFactory(name="A disabled", enabled=False)
    ConnectorFactory(name="B enabled")
    ConnectorFactory(name="C enabled")
    response = support_client.get(URL)
    assert list(rows_of(response)) == ["B enabled", "C enabled", "A disabled"]


def test_the_quarantine_shows_since_reason_and_held_dispatches(support_client, quarantined):
    text = support_client.get(URL).content.decode()
    block = text[text.index(f'id="quarantine-{quarantined.pk}"'):]
    block = block[:block.index("</tr>")]

    since = timezone.localtime(quarantined.quarantined_at)
    assert f"since {since:%Y-%m-%d %H:%M}" in block
    assert "Every delivery failed for 5 day(s)." in block
    assert '<strong class="dc-held">3</strong> dispatch(es) are held' in block
    assert "dc-quarantined" in text


@pytest.mark.parametrize(("ms", "text"), [
    (None, "–"), (0, "0 ms"), (850, "850 ms"), (4200, "4.2 s"), (15_000, "15 s"),
    (100_000, "1.7 min"), (12 * 60_000, "12 min"), (3.5 * 3_600_000, "3.5 h"),
    (50 * 3_600_000, "2.1 d"),
])
def test_durations_read_like_people_write_them(ms, text):
    assert duration(ms) == text


@pytest.mark.parametrize(("p", "n", "rank"), [(50, 1, 1), (95, 1, 1), (50, 20, 10),
                                              (95, 20, 19), (95, 30, 29), (50, 3, 2)])
def test_nearest_rank(p, n, rank):
    assert health_selectors.nearest_rank(p, n) == rank


# --- Bounded queries, no secrets ------------------------------------------------------------------


def _fill(connectors, per_connector, *, first=0):
    for n in range(first, first + connectors):
        connector = ConnectorFactory(name=f"Hook {n:02d}")
        if n % 3 == 0:
            quarantine(connector)
        for i in range(per_connector):
            status = "failed" if i % 4 == 0 else "succeeded" if i % 4 else "retrying"
            row = dispatch(connector, status=status, age=timedelta(hours=i % 40),
                           latency=SECOND * i if status == "succeeded" else None)
            attempt(row, ago=timedelta(hours=i % 40), outcome="retry")


def _queries(client, django_assert_max_num_queries, bound):
    with django_assert_max_num_queries(bound) as captured:
        assert client.get(URL).status_code == 200
    return len(captured)


def test_the_number_of_queries_does_not_grow_with_connectors_or_dispatches(
    admin_web, django_assert_max_num_queries
):
    _fill(connectors=2, per_connector=3)
    small = _queries(admin_web, django_assert_max_num_queries, 7)
    _fill(connectors=10, per_connector=12, first=2)
    large = _queries(admin_web, django_assert_max_num_queries, 7)
    assert large == small


def test_no_secret_reaches_the_page(admin_web, secret_connector):
    quarantine(secret_connector, reason=f"Failing with password {SECRETS[0]}")
    row = dispatch(secret_connector, status="failed", age=timedelta(hours=1))
    attempt(row, ago=timedelta(minutes=50), outcome="failed",
            message=f"401 for login svc / {SECRETS[0]} (client {SECRETS[1]})",
            hint=f"Signed with {SECRETS[2]}; check it.")

    text = admin_web.get(URL).content.decode()

    assert "BC prod hook" in text and "[redacted]" in text
    for secret in SECRETS:
        assert secret not in text
