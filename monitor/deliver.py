"""The outbox relay: sends pending deliveries, one independent lane per destination.

A lane sends its destination's rows in order. A transient failure parks the lane's
deliveries until the retry time (the destination is likely down, and order matters), and
a Retry-After parks every row of the lane, notices and digests too, until it ends (also
when the row it answered expires meanwhile), so one dead, slow or rate-limited
destination never delays another: each lane is its own task. A lane
also keeps its destination's rate (a token bucket), bundles its digests, and stops while
the destination is paused after repeated permanent failures (until `newsmon resume`).
Operational notices go first; a destination pausing, or alerts expiring, raise one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

from monitor import notices
from monitor.errors import StoreError
from monitor.log import log_event
from monitor.models import Delivery, DigestRow, LanePolicy, Notice, Outcome, SendResult
from monitor.notify.base import Notifier
from monitor.storage_pause import FIRST_RETRY, StoragePause
from monitor.store import Store

log = logging.getLogger("newsmon.deliver")
BATCH = 100  # rows read from SQLite at a time: memory stays flat whatever the backlog
DIGEST_LIMIT = 200  # hits in one digest at most (RELIABILITY.md case 39)
# seconds between looks at the outbox for what another process changed: a paused
# destination resumed, a failed delivery queued again (`newsmon resume`, `redeliver`)
LOOK_AGAIN = 2.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, never shorter than a destination's
    Retry-After, clamped to [``floor``, ``cap``] (RELIABILITY.md case 45).

    Retry-After is the least time to wait: a destination that keeps answering ``0``, or
    a date already past, gets the backoff, not a try every ``floor`` seconds for all of a
    delivery's ``max_age`` (86,400 tries and log lines in a day).
    """

    base: float = 5.0
    cap: float = 3600.0
    floor: float = 1.0

    def delay(self, attempts: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before the next attempt."""
        jittered = rng.uniform(0, self.base * 2 ** max(0, attempts - 1))
        return max(min(max(jittered, self.floor), self.cap), self.obeyed(retry_after))

    def obeyed(self, retry_after: float | None) -> float:
        """Seconds of a destination's Retry-After that are obeyed: up to ``cap``."""
        return min(retry_after or 0.0, self.cap)


class TokenBucket:
    """At most ``burst`` sends back to back, then ``rate`` per second."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def wait_time(self) -> float:
        """Seconds until a send is allowed; 0.0 when one is allowed now."""
        now = self._clock()
        # max(0, ...): a wall clock stepped backwards must not drain the bucket.
        self._tokens = min(self._burst, self._tokens + max(0.0, now - self._at) * self._rate)
        self._at = now
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self._rate

    def take(self) -> None:
        self._tokens -= 1.0


@dataclass(eq=False)
class _Lane:
    """What serves one destination: its notifier and policy, and the lane's own state."""

    notifier: Notifier
    policy: LanePolicy
    bucket: TokenBucket | None  # None: no rate limit
    storage: StoragePause  # the lane's pause while the database refuses writes
    # until when the destination asked (Retry-After) to be left alone: no row of the lane
    # goes before, whatever its own time; in memory, kept through a reload that replaces
    # the lane: a restart forgets it, and the destination, asked once early, says it again
    quiet_until: float = 0.0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None  # while it runs for good


class Relay:
    """Drains the outbox through the notifiers; ``wake()`` after new deliveries are stored.

    ``lanes`` holds each destination's policy (default ``LanePolicy()``); ``clock`` and
    ``sleep`` drive backoff, rate limits and digest windows, so tests control time;
    ``notices`` says where operational notices go now (``[monitor] notices``);
    ``storage_retry``: seconds a lane waits, at first, when the database refuses writes.
    """

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        *,
        policy: RetryPolicy,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        lanes: Mapping[str, LanePolicy] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        look_again: float = LOOK_AGAIN,
        notices: Callable[[], Sequence[str]] = tuple,
        storage_retry: float = FIRST_RETRY,
    ) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._look_again = look_again
        self._notices = notices
        self._storage_retry = storage_retry
        self._stopping = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None  # while the lanes run for good
        self._lanes = {
            name: self._lane_of(name, notifier, (lanes or {}).get(name, LanePolicy()))
            for name, notifier in notifiers.items()
        }

    def _lane_of(self, name: str, notifier: Notifier, policy: LanePolicy) -> _Lane:
        rate = policy.rate
        return _Lane(
            notifier,
            policy,
            TokenBucket(rate, policy.burst, self._clock) if rate is not None else None,
            StoragePause(
                self._clock,
                fields={"notifier": name, "deliveries": "paused"},
                first=self._storage_retry,
            ),
        )

    def wake(self) -> None:
        for lane in self._lanes.values():
            lane.wakeup.set()

    def shift(self, seconds: float) -> None:
        """The wall clock jumped ``seconds`` (RELIABILITY.md case 62): move the lanes' waits
        with it, as ``Store.shift_schedule`` moves the stored ones, and let them look again."""
        for lane in self._lanes.values():
            lane.quiet_until += seconds
        self.wake()

    def stop(self) -> None:
        """Ask every lane to finish the attempt in hand and return: an attempt cut off
        mid-send could be accepted by the destination without being marked sent."""
        self._stopping.set()
        for lane in self._lanes.values():
            lane.stop.set()
        self.wake()

    async def run(self, *, until_empty: bool = False) -> None:
        """Run every lane; forever, or (``until_empty``) until nothing is due or waiting
        for a retry. Digest windows are kept either way: nothing is flushed early."""
        async with asyncio.TaskGroup() as group:
            for name, lane in self._lanes.items():
                lane.task = group.create_task(
                    self._serve_lane(name, until_empty), name=f"lane-{name}"
                )
            if not until_empty:  # open for the lanes a reload starts
                self._group = group
                await self._stopping.wait()
                self._group = None

    async def replace(
        self,
        notifiers: Mapping[str, Notifier],
        lanes: Mapping[str, LanePolicy],
        grace: float,
    ) -> list[str]:
        """Serve ``notifiers`` from now on. Lanes whose notifier is not among them (removed,
        or changed: a new object) finish the attempt in hand and stop, within ``grace``
        seconds, then are cut off; new ones start; the others go on untouched, so a
        reload that changes one destination neither delays nor repeats another's alerts.
        Returns the lanes cut off, whose row in 'sending' the caller puts back."""
        going = {
            name: self._lanes.pop(name)
            for name, lane in list(self._lanes.items())
            if notifiers.get(name) is not lane.notifier
        }
        for lane in going.values():
            lane.stop.set()
            lane.wakeup.set()
        running = {name: lane.task for name, lane in going.items() if lane.task is not None}
        late: set[asyncio.Task[None]] = set()
        if running:
            _, late = await asyncio.wait(running.values(), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.wait(running.values())
        for name, notifier in notifiers.items():
            if name not in self._lanes:
                lane = self._lanes[name] = self._lane_of(
                    name, notifier, lanes.get(name, LanePolicy())
                )
                if name in going:  # a notifier edited: its destination's Retry-After holds
                    lane.quiet_until = going[name].quiet_until
                if self._group is not None:
                    lane.task = self._group.create_task(
                        self._serve_lane(name, False), name=f"lane-{name}"
                    )
        return [name for name, task in running.items() if task in late]

    async def _serve_lane(self, name: str, until_empty: bool) -> None:
        """Serve one destination. A database that refuses writes (RELIABILITY.md case 58)
        pauses the lane, not the daemon: after a growing wait the lane puts back the row
        it may have left in 'sending' (at most one extra copy, as after a crash) and goes
        on; the pause ends at the next attempt the database records (putting back no row
        writes nothing, so a full disk lets it pass). ``until_empty`` (``run --once``) has
        no later: the error is raised."""
        lane = self._lanes[name]
        pause, stop = lane.storage, lane.stop
        while not stop.is_set():
            try:
                if pause.failures:
                    await self._store.recover_sending(self._clock(), notifier=name)
                await self._serve(name, until_empty)
                return
            except (StoreError, sqlite3.Error) as e:
                if until_empty:
                    raise
                pause.failed(e)
                await self._wait(stop, pause.wait())

    async def _serve(self, name: str, until_empty: bool) -> None:
        lane = self._lanes[name]
        wakeup, stop = lane.wakeup, lane.stop
        announced = False
        while not stop.is_set():
            wakeup.clear()
            reason = await self._store.paused(name)
            if reason is not None:
                if not announced:
                    log_event(
                        log, logging.ERROR, "destination_paused", notifier=name, reason=reason,
                        fix=f"newsmon resume {name}",
                    )  # fmt: skip
                    announced = True
                if until_empty:
                    return
                await self._wait(wakeup, self._look_again)
                continue
            if announced:
                log_event(log, logging.INFO, "destination_resumed", notifier=name)
                announced = False
            await self.send_due(name)
            if not await self._until_due(name, lane, until_empty):
                return

    async def _until_due(self, name: str, lane: _Lane, until_empty: bool) -> bool:
        """Wait until something of the lane is due, or ``wake()``; meanwhile read the
        outbox every ``look_again`` seconds for what another process queued or made due
        (`newsmon redeliver`). Reads only: an idle lane writes nothing. False when
        ``until_empty`` and nothing waits. ``lane``, not looked up by ``name``: a reload
        may take it out of the relay meanwhile (``replace``)."""
        while not lane.stop.is_set():
            next_at, closes = await self._store.lane_times(name, lane.policy.digest)
            if next_at is None and until_empty:
                return False
            quiet, now = self._quiet(lane), self._clock()
            times = [max(t - now, quiet) for t in (next_at, closes) if t is not None]
            if times and min(times) <= 0:
                return True
            if await self._wait(lane.wakeup, min([*times, self._look_again])):
                return True
        return True

    def _quiet(self, lane: _Lane) -> float:
        """Seconds the lane still owes its destination's Retry-After."""
        return max(0.0, lane.quiet_until - self._clock())

    @staticmethod
    async def _wait(wakeup: asyncio.Event, seconds: float) -> bool:
        """Until ``wake()`` or ``seconds`` have passed; whether woken."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), seconds)
        return wakeup.is_set()

    async def send_due(self, name: str) -> None:
        """Send this destination's due digests, then (bundling its digests first, when it
        has a window) its due deliveries, in order; stop at the first transient failure
        or when the destination pauses. Nothing while the destination asked for quiet."""
        lane = self._lanes[name]
        window, stop = lane.policy.digest, lane.stop
        if self._quiet(lane):
            return
        for notice in await self._store.due_notices(name, self._clock()):
            if stop.is_set() or not await self._attempt(name, notice):
                return
        await self._store.close_storms(name, self._clock())
        while True:
            for digest in await self._store.due_digests(name, self._clock()):
                if stop.is_set() or not await self._attempt(name, digest):
                    return
            if window is None:
                break
            if not await self._store.bundle_digest(name, window, self._clock(), DIGEST_LIMIT):
                return
        while True:
            due = await self._store.due_deliveries(name, self._clock(), BATCH)
            for delivery in due:
                if stop.is_set() or not await self._attempt(name, delivery):
                    return
            if len(due) < BATCH:
                return

    async def _take_token(self, name: str) -> None:
        bucket = self._lanes[name].bucket
        if bucket is None:
            return
        while (wait := bucket.wait_time()) > 0:
            await self._sleep(wait)
        bucket.take()

    async def _attempt(self, name: str, row: Delivery | DigestRow | Notice) -> bool:
        """One attempt; False when the lane should wait before trying anything else."""
        store, lane = self._store, self._lanes[name]
        notifier, policy = lane.notifier, lane.policy
        await self._take_token(name)
        fields: dict[str, object] = {"delivery": row.id, "notifier": name}
        send: Callable[[], Awaitable[SendResult]]
        if isinstance(row, Notice):
            fields["notice"] = row.kind
            send = partial(notifier.send_notice, row)
        elif isinstance(row, DigestRow):
            digest = await store.digest(row)
            fields["hits"] = digest.total
            send = partial(notifier.send_digest, digest)
        else:
            alert = await store.alert(row)  # rendered fresh: `also` grows between attempts
            fields["rule"] = alert.rule
            send = partial(notifier.send, alert)
        await store.mark_sending(row.id, self._clock())
        lane.storage.succeeded()
        try:
            result = await send()
        except Exception as e:  # a notifier bug must not kill the lane
            log.exception("notifier %s raised", name)
            result = SendResult(Outcome.RETRY, f"internal error: {type(e).__name__}")
        now = self._clock()
        if result.outcome is Outcome.SENT:
            await store.mark_sent(row.id, name, now)
            log_event(log, logging.INFO, "delivery_sent", **fields, detail=result.detail)
            return True
        if result.outcome is Outcome.PERMANENT:
            paused = await store.mark_failed(
                row.id, name, now, result.detail, pause_after=policy.pause_after
            )
            log_event(log, logging.ERROR, "delivery_failed", **fields, reason=result.detail)
            if paused:
                await self._notice(notices.destination_paused, name, result.detail, now)
            return not paused
        at = now + self._policy.delay(row.attempts + 1, result.retry_after, self._rng)
        not_before = now + self._policy.obeyed(result.retry_after)
        # every row of the lane (notices and digests too, which keep times of their own)
        # waits as the destination asked, whether this row is retried or expires (G8)
        lane.quiet_until = max(lane.quiet_until, not_before)
        retry = await store.retry_or_expire(
            row.id, now, at, not_before=not_before, max_age=policy.max_age, error=result.detail
        )
        if isinstance(retry, str):
            log_event(log, logging.ERROR, "delivery_expired", **fields, reason=retry)
            if not isinstance(row, Notice):  # a notice about a notice could chase itself
                await self._notice(notices.delivery_expired, name, retry, now)
            return not_before <= now
        log_event(
            log, logging.WARNING, "delivery_retry", **fields, reason=result.detail,
            retry_in=f"{retry - now:.1f}s",
        )  # fmt: skip
        return False

    async def _notice(
        self,
        raise_: Callable[[Store, Sequence[str], str, str, float], Awaitable[bool]],
        name: str,
        reason: str,
        now: float,
    ) -> None:
        """Raise a notice about destination ``name`` and wake the lanes that carry it."""
        if await raise_(self._store, self._notices(), name, reason, now):
            self.wake()
