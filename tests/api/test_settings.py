"""The API's settings: read from the environment, a wrong rate refused at start-up."""

from __future__ import annotations

import os
import subprocess
import sys


def _settings_with(**env: str) -> subprocess.CompletedProcess[str]:
    code = (
        "from django.conf import settings; "
        "print(settings.API_RATE, settings.API_MAX_BODY_BYTES, "
        "settings.DATA_UPLOAD_MAX_MEMORY_SIZE)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "dimeconnect.settings", **env},
    )


def test_the_limits_come_from_the_environment():
    result = _settings_with(API_RATE="20/s", API_MAX_BODY_BYTES="8000000")
    assert result.stdout.split() == ["20/s", "8000000", "8000000"]


def test_a_rate_that_is_not_n_per_period_is_refused_at_start_up():
    result = _settings_with(API_RATE="lots")
    assert result.returncode != 0
    assert "API_RATE must look like 600/min, not 'lots'" in result.stderr
