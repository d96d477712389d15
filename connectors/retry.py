"""Retry schedules: the default of DESIGN.md and the text form a connector may override it with."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

# Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (DESIGN.md, Write-back).
DEFAULT_RETRY_SCHEDULE: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TOKEN = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
MAX_STEPS = 20
MAX_DELAY_S = 7 * 86400


def parse_schedule(text: str) -> tuple[int, ...]:
    """Delays in seconds from text such as "0, 5s, 5m, 30m, 2h" (a bare number is seconds).

    Raises ValidationError naming the first token it cannot read.
    """
    tokens = [token.strip().lower() for token in re.split(r"[,\s]+", text.strip()) if token]
    if not tokens:
        raise ValidationError("Give at least one delay, for example: 0, 5s, 5m, 30m, 2h.")
    if len(tokens) > MAX_STEPS:
        raise ValidationError(f"At most {MAX_STEPS} delays (got {len(tokens)}).")
    delays = []
    for token in tokens:
        match = _TOKEN.match(token)
        if not match:
            raise ValidationError(
                f"'{token}' is not a delay: use a number with an optional unit s, m, h or d "
                "(for example 30s, 5m, 2h)."
            )
        seconds = round(float(match.group(1)) * _UNITS[match.group(2)])
        if seconds > MAX_DELAY_S:
            raise ValidationError(f"'{token}' is longer than the 7-day maximum for one delay.")
        delays.append(seconds)
    return tuple(delays)


def format_schedule(delays: tuple[int, ...]) -> str:
    """The text form of a schedule, largest whole unit per delay ("0s, 5s, 5m, 2h")."""
    parts = []
    for seconds in delays:
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds and seconds % size == 0:
                parts.append(f"{seconds // size}{unit}")
                break
        else:
            parts.append(f"{seconds}s")
    return ", ".join(parts)
