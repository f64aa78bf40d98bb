"""A long outage: hundreds of hits pile up while the destination is down; after recovery all
go out, in order, within the rate limit, and memory stays far below the backlog
(RELIABILITY.md case 53, G9)."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

from monitor.deliver import Relay, RetryPolicy
from monitor.models import Alert, Digest, LanePolicy, Outcome, SendResult
from monitor.store import Store
from tests.outbox import ManualClock, add_hits

BACKLOG = 600
SNIPPET = "Russia's embassy said the talks were useful. " * 200  # ~9 KB per alert


class Destination:
    """Down until ``up`` is set; then checks order and spacing as alerts arrive, keeping
    only counters so that it does not itself grow with the backlog."""

    def __init__(self, clock: ManualClock) -> None:
        self.name = "desk"
        self.clock = clock
        self.up = False
        self.received = 0
        self.first_at: float | None = None
        self.out_of_order = 0
        self.too_early = 0

    async def send(self, alert: Alert) -> SendResult:
        if not self.up:
            return SendResult(Outcome.RETRY, "HTTP 503")
        now = self.clock()
        if self.first_at is None:
            self.first_at = now
        # rate 1/s after a burst of 3: the n-th alert no earlier than first + n - 2 s
        if now < self.first_at + self.received - 2 - 1e-6:
            self.too_early += 1
        if alert.title != f"story {self.received}":
            self.out_of_order += 1
        self.received += 1
        return SendResult(Outcome.SENT, "HTTP 200")

    async def send_digest(self, digest: Digest) -> SendResult:
        raise AssertionError("no digest configured")

    async def close(self) -> None:
        """Nothing to release."""


async def test_backlog_drains_in_order_within_rate_and_flat_memory(tmp_path: Path) -> None:
    """Memory while draining a stored backlog stays far below what holding it would take;
    all arrive, in order, none faster than 1/s after the
    burst."""
    clock = ManualClock()
    store = await Store.open(tmp_path / "newsmon.db")
    try:
        destination = Destination(clock)
        relay = Relay(
            store, {"desk": destination}, policy=RetryPolicy(base=60, cap=600), clock=clock,
            rng=random.Random(2), lanes={"desk": LanePolicy(rate=1.0, burst=3, max_age=1e9)},
            sleep=clock.sleep,
        )  # fmt: skip
        for batch in range(10):
            await add_hits(store, BACKLOG // 10, ["desk"], clock(), start=batch * (BACKLOG // 10),
                           snippet=SNIPPET)  # fmt: skip
            clock.advance(1)
            await relay.send_due("desk")  # down: one try, then the lane waits
        assert await store.open_deliveries() == BACKLOG

        destination.up = True
        next_at, _ = await store.lane_times("desk", None)
        assert next_at is not None
        clock.now = max(clock.now, next_at)
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            await relay.send_due("desk")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert destination.received == BACKLOG
        assert destination.out_of_order == 0
        assert destination.too_early == 0
        assert clock() - (destination.first_at or 0) >= BACKLOG - 3
        assert await store.open_deliveries() == 0
        # Holding the backlog would take BACKLOG * len(SNIPPET) = 5.4 MB in snippets alone;
        # the relay reads BATCH rows at a time.
        assert peak - before < 2_000_000, f"grew {peak - before} bytes"
    finally:
        await store.close()
