"""The one contract every channel implements, and HTTP answers classified in one place."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Protocol

from monitor.models import Alert, Digest, Outcome, SendResult

# Retry-After beyond this is treated as "a long time", not obeyed literally.
MAX_RETRY_AFTER = 3600.0


class Notifier(Protocol):
    """Sends one alert to one destination and says what the destination answered.

    ``send`` never raises for a destination's failure: it returns a ``SendResult`` whose
    detail is safe to log (no URL of a secret webhook, no password).
    """

    name: str

    async def send(self, alert: Alert) -> SendResult: ...

    async def send_digest(self, digest: Digest) -> SendResult:
        """Several alerts in one message (a notifier with ``digest`` set)."""
        ...

    async def close(self) -> None: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date, RFC 9110
    section 10.2.3), clamped to [0, MAX_RETRY_AFTER]; None when absent or nonsense."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return min(max(delta, 0.0), MAX_RETRY_AFTER)


def classify_http(status: int, headers: Mapping[str, str], body_hint: str = "") -> SendResult:
    """2xx sent; 408, 429 and 5xx retried; any other answer is permanent."""
    hint = f": {body_hint}" if body_hint else ""
    if 200 <= status < 300:
        return SendResult(Outcome.SENT, f"HTTP {status}")
    if status in (408, 429) or status >= 500:
        return SendResult(
            Outcome.RETRY, f"HTTP {status}{hint}", parse_retry_after(headers.get("Retry-After"))
        )
    return SendResult(Outcome.PERMANENT, f"HTTP {status}{hint}")
