"""The one contract every channel implements, and HTTP answers classified in one place."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Protocol

from monitor.models import Alert, Digest, Notice, Outcome, SendResult
from monitor.retry_after import parse_retry_after

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
        """Several alerts in one message (a notifier with ``digest`` set), or a storm
        summary (``digest.storm_rule`` set: a rule past its max_per_hour)."""
        ...

    async def send_notice(self, notice: Notice) -> SendResult:
        """An operational notice (``[monitor] notices``): a short plain message."""
        ...

    async def close(self) -> None: ...


def classify_http(status: int, headers: Mapping[str, str], body_hint: str = "") -> SendResult:
    """2xx sent; 408, 429 and 5xx retried; any other answer is permanent."""
    hint = f": {body_hint}" if body_hint else ""
    if 200 <= status < 300:
        return SendResult(Outcome.SENT, f"HTTP {status}")
    if status in (408, 429) or status >= 500:
        return SendResult(
            Outcome.RETRY,
            f"HTTP {status}{hint}",
            parse_retry_after(headers.get("Retry-After"), cap=MAX_RETRY_AFTER),
        )
    return SendResult(Outcome.PERMANENT, f"HTTP {status}{hint}")


SHORT_SECRET = 8  # characters: shorter secrets are masked only where they stand alone


def scrubbed(result: SendResult, secrets: Iterable[str], mask: str) -> SendResult:
    """``result`` with every (non-empty) secret in its detail replaced by ``mask``: a
    destination may echo what it was sent, and a detail is logged and shown.

    A short secret is masked only where no letter or digit touches it: a password "x"
    masked in every word ("e<secret>tension") garbled the answer and showed where the
    secret's letters are.
    """
    detail = result.detail
    for secret in secrets:
        if len(secret) >= SHORT_SECRET:
            detail = detail.replace(secret, mask)
        elif secret:
            alone = rf"(?<![^\W_]){re.escape(secret)}(?![^\W_])"
            detail = re.sub(alone, lambda _: mask, detail)
    if detail == result.detail:
        return result
    return SendResult(result.outcome, detail, result.retry_after)
