"""When to poll a feed next: the interval, what the publisher asks for, and backoff.

Pure functions of their inputs (no clock reads), so every rule here is tested without
waiting. All results are seconds from now, before jitter.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.retry_after import parse_http_date, parse_retry_after

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
MAX_BACKOFF = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class Bounds:
    """``[monitor] min_interval`` / ``max_interval``: no feed is polled more often or
    more rarely than this, whatever its interval or its publisher says."""

    low: float
    high: float

    def clamp(self, seconds: float) -> float:
        return min(max(seconds, self.low), self.high)


def publisher_hint(headers: Mapping[str, str], ttl: float | None, now: float) -> float | None:
    """How long the publisher says the feed stays fresh: Cache-Control max-age
    (RFC 9111 section 5.2.2.1), else Expires (section 5.3), and the RSS <ttl>; the
    longest of them. ``headers`` have lower-case names."""
    hints: list[float] = [] if ttl is None else [ttl]
    control = headers.get("cache-control", "")
    if match := _MAX_AGE.search(control):
        hints.append(float(match.group(1)))
    elif when := parse_http_date(headers.get("expires", "")):
        hints.append(max(0.0, when.timestamp() - now))  # RFC 9111: invalid means expired
    return max(hints) if hints else None


def after_success(interval: float, hint: float | None, bounds: Bounds) -> float:
    """Poll again after the interval, or later when the publisher asks for that."""
    return bounds.clamp(max(interval, hint or 0.0))


def after_failure(
    interval: float, errors: int, headers: Mapping[str, str], now: float, bounds: Bounds
) -> float:
    """Exponential backoff from the interval, capped; a 429/503 Retry-After wins when it
    asks for longer. Failing feeds are never given up: the cap keeps them polled."""
    cap = max(bounds.clamp(interval), min(MAX_BACKOFF, bounds.high))
    backoff = min(bounds.clamp(interval) * 2.0 ** max(0, errors - 1), cap)
    retry_after = parse_retry_after(headers.get("retry-after"), cap=bounds.high, now=now)
    if retry_after is not None:
        return min(max(backoff, retry_after), bounds.high)
    return backoff


def parse_ttl(value: object) -> float | None:
    """RSS <ttl> is minutes; nonsense is ignored."""
    try:
        minutes = float(str(value).strip())
    except ValueError:
        return None
    return minutes * 60.0 if 0 < minutes < 100_000 else None


def adaptive_interval(published: list[float], bounds: Bounds) -> float | None:
    """Half the median gap between a feed's recent entries: a feed that publishes hourly
    is polled every half hour, one that publishes weekly far less. None until there are
    enough entries to say (five)."""
    times = sorted(published)
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    if len(gaps) < 4:
        return None
    gaps.sort()
    return bounds.clamp(gaps[len(gaps) // 2] / 2)
