"""The Retry-After header (RFC 9110 section 10.2.3), read defensively: publishers and
destinations alike send nonsense in it."""

from __future__ import annotations

import email.utils
import re
import time
from datetime import datetime

_SECONDS = re.compile(r"[0-9]{1,10}")  # ASCII only: str.isdigit() also accepts "²"


def parse_http_date(value: str) -> datetime | None:
    """An HTTP date (RFC 9110 section 5.6.7); None when it is nonsense or names no zone."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else None


def parse_retry_after(value: str | None, *, cap: float, now: float | None = None) -> float | None:
    """Seconds to wait, from delta-seconds or an HTTP date, clamped to [0, cap]; None
    when absent or nonsense (the caller's own backoff applies then)."""
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return min(float(value), cap)
    when = parse_http_date(value)
    if when is None:
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return min(max(delta, 0.0), cap)
