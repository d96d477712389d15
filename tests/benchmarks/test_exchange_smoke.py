"""A smoke run of the Exchange benchmark (tests/benchmarks/exchange.py), so the script cannot
rot: tiny numbers, in process only, in a subprocess of its own (the benchmark sets up Django on
a database of its own, which the suite's process must not do)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def test_the_exchange_benchmark_runs_and_batches_its_graph_calls() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.exchange", "--mode", "in-process",
         "--changes", "40", "--mailboxes", "4", "--latency-ms", "1", "--no-fail"],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    baseline = next(line for line in lines if line.startswith("one call per change"))
    batched = next(line for line in lines if line.startswith("(a) in process"))
    # changes, requests: one request per change without $batch, two $batch requests with it
    assert baseline.split()[5:7] == ["40", "40"], baseline
    assert batched.split()[4:6] == ["40", "2"], batched
    assert "2 Graph requests for 40 changes = one per 20.0" in result.stdout
    assert ": PASS" in result.stdout
