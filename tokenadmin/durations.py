"""Durations as people write them: `90d`, `12h`, `10m`, `30s` (a bare number is days).

Standard library only: settings.py parses TOKENADMIN_WARNING_LEAD_TIMES with it before Django
is set up, and the CLI reads `--refresh-lifetime` with it.
"""

import re
from datetime import timedelta

_DURATION = re.compile(r"^(\d{1,9})\s*([dhms]?)$")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `30m`, `3600s` or `90` (days) → a positive timedelta; ValueError says why."""
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration; use e.g. 90d, 12h, 30m, 3600s or 90 (days)")
    return timedelta(seconds=int(match.group(1)) * _SECONDS[match.group(2) or "d"])


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling `parse_duration` reads back: 7 days → `7d`, 10 min → `10m`."""
    seconds = int(value.total_seconds())
    for unit, size in _SECONDS.items():
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
