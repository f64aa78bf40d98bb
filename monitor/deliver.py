"""The outbox relay: sends pending deliveries, one independent lane per destination.

A lane sends its destination's rows in order. A transient failure parks the whole lane
until the retry time (the destination is likely down, and order matters), so one dead
destination never delays another: each lane is its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from monitor.log import log_event
from monitor.models import Delivery, Outcome, SendResult
from monitor.notify.base import Notifier
from monitor.store import Store

log = logging.getLogger("newsmon.deliver")
BATCH = 100


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by ``max_age`` since the hit."""

    base: float = 5.0
    cap: float = 3600.0
    max_age: float = 86400.0

    def delay(self, attempts: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before the next attempt; a destination's Retry-After wins, within cap."""
        if retry_after is not None:
            return min(retry_after, self.cap)
        return rng.uniform(0, min(self.cap, self.base * 2 ** max(0, attempts - 1)))


class Relay:
    """Drains the outbox through the notifiers; ``wake()`` after new deliveries are stored."""

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        *,
        policy: RetryPolicy,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._notifiers = dict(notifiers)
        self._policy = policy
        self._clock = clock
        self._rng = rng or random.Random()
        self._wakeups = {name: asyncio.Event() for name in notifiers}
        self._stopping = False

    def wake(self) -> None:
        for event in self._wakeups.values():
            event.set()

    def stop(self) -> None:
        """Ask every lane to finish the attempt in hand and return: an attempt cut off
        mid-send could be accepted by the destination without being marked sent."""
        self._stopping = True
        self.wake()

    async def run(self, *, until_empty: bool = False) -> None:
        """Run every lane; forever, or (``until_empty``) until no delivery is open."""
        async with asyncio.TaskGroup() as group:
            for name in self._notifiers:
                group.create_task(self._lane(name, until_empty), name=f"lane-{name}")

    async def _lane(self, name: str, until_empty: bool) -> None:
        wakeup = self._wakeups[name]
        while not self._stopping:
            wakeup.clear()
            await self.send_due(name)
            next_at = await self._store.next_delivery_at(name)
            if next_at is None and until_empty:
                return
            timeout = None if next_at is None else max(0.0, next_at - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout)

    async def send_due(self, name: str) -> None:
        """Send this destination's due rows in order; stop at the first transient failure."""
        notifier = self._notifiers[name]
        while True:
            due = await self._store.due_deliveries(name, self._clock(), BATCH)
            for delivery in due:
                if self._stopping or not await self._attempt(notifier, delivery):
                    return
            if len(due) < BATCH:
                return

    async def _attempt(self, notifier: Notifier, delivery: Delivery) -> bool:
        """One attempt; False when the lane should wait before trying anything else."""
        store, now = self._store, self._clock()
        alert = await store.alert(delivery)
        await store.mark_sending(delivery.id, now)
        try:
            result = await notifier.send(alert)
        except Exception as e:  # a notifier bug must not kill the lane
            log.exception("notifier %s raised", notifier.name)
            result = SendResult(Outcome.RETRY, f"internal error: {type(e).__name__}")
        now = self._clock()
        fields = {"delivery": delivery.id, "notifier": notifier.name, "rule": alert.rule}
        if result.outcome is Outcome.SENT:
            await store.mark_sent(delivery.id, now)
            log_event(log, logging.INFO, "delivery_sent", **fields, detail=result.detail)
            return True
        if result.outcome is Outcome.PERMANENT:
            await store.mark_final(delivery.id, "failed", now, result.detail)
            log_event(log, logging.ERROR, "delivery_failed", **fields, reason=result.detail)
            return True
        at = now + self._policy.delay(delivery.attempts + 1, result.retry_after, self._rng)
        if at > delivery.created_at + self._policy.max_age:
            await store.mark_final(delivery.id, "expired", now, f"gave up: {result.detail}")
            log_event(log, logging.ERROR, "delivery_expired", **fields, reason=result.detail)
            return True
        await store.mark_retry(delivery.id, now, at, result.detail)
        log_event(
            log, logging.WARNING, "delivery_retry", **fields, reason=result.detail,
            retry_in=f"{at - now:.1f}s",
        )  # fmt: skip
        return False
