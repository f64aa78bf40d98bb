"""Human durations ("90s", "10m", "2h", "1d") as seconds, and seconds as one."""

from __future__ import annotations

import re

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdw])\s*")  # ASCII: \d takes "１０"


# A century: a poll or a retention further away is no plan, and a time past the year
# 9999 is no date (`newsmon feeds` could not print the next poll).
MAX_DURATION = 36_500 * _UNITS["d"]


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError with a message fit for a user."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f'expected a duration like "90s", "10m", "2h" or "1d", got {text!r}')
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_DURATION:
        raise ValueError(f"expected at most {span(MAX_DURATION)} (a century), got {text!r}")
    return seconds


def span(seconds: float) -> str:
    """``seconds`` in its largest whole unit, rounded: "3d", "5h", "12m", "40s"."""
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit]:
            return f"{seconds / _UNITS[unit]:.0f}{unit}"
    return f"{max(0.0, seconds):.0f}s"
