"""Settings of the app under an HTTP benchmark: the end-to-end settings (a namespace per run
in a shared Redis) with the benchmark's URLconf, which adds the baseline views
(tests/benchmarks/urls.py)."""

from __future__ import annotations

from tests.e2e.settings import *  # noqa: F403

ROOT_URLCONF = "tests.benchmarks.urls"
