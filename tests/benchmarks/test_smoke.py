"""The benchmark scripts run by hand (docs/BENCHMARKS.md); this runs each new one with tiny
numbers and --no-fail, so they cannot rot. It checks that they finish, print their figures
and verdicts, and found the app's answers and deliveries correct (they exit 1 otherwise)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.harness import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def run_benchmark(module: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", module, *args, "--no-fail"], cwd=ROOT,
                            capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_the_intake_benchmark_runs_and_reports_both_goals():
    out = run_benchmark("tests.benchmarks.intake", "--events", "24", "--rounds", "2",
                        "--concurrency", "2", "--bulk-posts", "1")
    assert "event intake" in out and "bulk intake" in out and "bulk intake, updates" in out
    assert "single events: intake" in out and "(goal >= 0.6)" in out
    assert "bulk of 500 new appointments: intake" in out
    assert "bulk of 500 updates: intake" in out and "ERROR" not in out


def test_the_dispatch_benchmark_runs_and_reports_both_goals():
    out = run_benchmark("tests.benchmarks.dispatch", "--events", "30", "--rate", "10",
                        "--paced-seconds", "1")
    assert "raw httpx (baseline)" in out and "qcluster" in out
    assert "throughput" in out and "(goal >= 0.5)" in out
    assert "latency p95" in out and "ERROR" not in out
