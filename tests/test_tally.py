"""The running counts behind the status line and the metrics (migration 11): deliveries
by destination and state, hits by rule, true to the rows through every change the outbox
makes, and made from the rows by an upgrade."""

from __future__ import annotations

import random
from pathlib import Path

import aiohttp
import pytest

from monitor.deliver import Relay, RetryPolicy
from monitor.notify.webhook import WebhookNotifier
from monitor.secrets import Secret
from monitor.store import Store
from tests.db import connect, plan, traced
from tests.old_schema import back_to_schema_10
from tests.outbox import Answer, Hook, ManualClock, add_hits

NOW = 1_750_000_000.0


def truth(path: Path) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """The counts read from the rows themselves, as the store read them before."""
    with connect(path) as conn:
        deliveries = conn.execute(
            "SELECT notifier, state, COUNT(*) FROM deliveries GROUP BY notifier, state"
        ).fetchall()
        hits = conn.execute("SELECT rule, COUNT(*) FROM hits GROUP BY rule").fetchall()
    return {(n, s): c for n, s, c in deliveries}, dict(hits)


async def tallied(store: Store) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """The store's counts, without the pairs a state has emptied (they stay, at 0)."""
    deliveries = {pair: n for pair, n in (await store.delivery_counts()).items() if n}
    return deliveries, await store.hit_counts()


async def test_the_counts_follow_every_change_the_outbox_makes(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """New hits and their deliveries, a hit stored again (nothing new), a real relay's
    sent, failed and retried rows, a requeue, a crash's 'sending' rows recovered, and a
    destination removed: after each, the counts are the rows' own, and an emptied state
    reads 0."""
    path = tmp_path / "newsmon.db"
    clock = ManualClock(NOW)
    store = await Store.open(path)
    try:
        await add_hits(store, 3, ["a", "b"], clock())
        assert (
            await tallied(store)
            == truth(path)
            == ({("a", "pending"): 3, ("b", "pending"): 3}, {"r": 3})
        )
        await add_hits(store, 4, ["a", "b"], clock())  # stories 0-2 again: one new hit
        assert await tallied(store) == truth(path)
        assert truth(path)[1] == {"r": 4}

        async with Hook([Answer(200), Answer(404), Answer(503)], clock) as hook:
            notifier = WebhookNotifier("a", Secret(hook.url), session, timeout=30.0)
            relay = Relay(
                store, {"a": notifier}, policy=RetryPolicy(base=1.0, cap=600.0), clock=clock,
                rng=random.Random(7), sleep=clock.sleep,
            )  # fmt: skip
            await relay.send_due("a")
        assert len(hook.seen) == 3
        assert await tallied(store) == truth(path)
        assert truth(path)[0] == {
            ("a", "sent"): 1, ("a", "failed"): 1, ("a", "pending"): 2, ("b", "pending"): 4
        }  # fmt: skip

        failed = next(r.id for r in await store.deliveries() if r.state == "failed")
        assert await store.requeue(failed, clock(), {"a"}) is None
        pending_b = [r.id for r in await store.deliveries() if r.notifier == "b"]
        for delivery in pending_b[:2]:
            await store.mark_sending(delivery, clock())
        assert await tallied(store) == truth(path)
        assert await store.recover_sending(clock()) == 2
        assert await tallied(store) == truth(path)
        assert await store.open_deliveries() == 7

        assert await store.cancel_deliveries(["a"], clock()) == 4
        assert await tallied(store) == truth(path)
        counts = await store.delivery_counts()
        assert counts[("a", "failed")] == 0  # requeued: the pair stays, at 0
        assert counts[("b", "cancelled")] == 4
    finally:
        await store.close()


async def test_an_upgrade_counts_the_rows_it_finds_and_goes_on_counting(tmp_path: Path) -> None:
    """A schema-10 database with hits and deliveries in several states: opening it makes
    the counts from the rows, and the triggers count from there."""
    path = tmp_path / "newsmon.db"
    store = await Store.open(path)
    await add_hits(store, 5, ["kept", "gone"], NOW)
    await store.cancel_deliveries(["kept"], NOW)
    await store.close()
    with connect(path) as conn:
        back_to_schema_10(conn)
        conn.execute("INSERT INTO hits SELECT id || 'x', 'older', story_key, entry_id, matched,"
                     " snippet, created_at FROM hits")  # fmt: skip
    store = await Store.open(path)
    try:
        expected = ({("kept", "pending"): 5, ("gone", "cancelled"): 5}, {"r": 5, "older": 5})
        assert await tallied(store) == truth(path) == expected
        await add_hits(store, 7, ["kept"], NOW)
        assert await tallied(store) == truth(path)
        assert truth(path) == (
            {("kept", "pending"): 7, ("gone", "cancelled"): 5},
            {"r": 7, "older": 5},
        )
    finally:
        await store.close()


@pytest.mark.parametrize("failed_only", [False, True], ids=["all", "failed"])
async def test_the_outbox_listing_reads_the_newest_deliveries_by_age(
    tmp_path: Path, failed_only: bool
) -> None:
    """`newsmon deliveries` (and `--failed`) reads the newest rows through an index by
    age, without sorting every delivery ever stored."""
    path = tmp_path / "newsmon.db"
    store = await Store.open(path)
    try:
        await add_hits(store, 3, ["a"], NOW)
        for row in await store.deliveries():
            await store.retry_or_expire(
                row.id, NOW + 1, NOW + 9, not_before=0, max_age=1, error="x"
            )
        async with traced(store) as statements:
            rows = await store.deliveries(failed_only=failed_only, limit=2)
    finally:
        await store.close()
    assert [(r.title, r.state) for r in rows] == [("story 2", "expired"), ("story 1", "expired")]
    (listing,) = [s for s in statements if "FROM deliveries" in s]
    steps = plan(path, listing)
    index = "deliveries_failed" if failed_only else "deliveries_created"
    assert f"SCAN d USING INDEX {index}" in steps
    assert "TEMP B-TREE" not in steps


# sqlite_stat1 rows as ANALYZE wrote them after a year at 1,000 hits a day to two
# destinations: with them, an ORDER BY created_at drew the planner to walk every delivery
STATISTICS = [
    ("deliveries", "deliveries_created", "730000 2"),
    ("deliveries", "deliveries_digest", "730000 730000"),
    ("deliveries", "deliveries_due", "730000 365000 182500 1"),
    ("deliveries", "deliveries_failed", "7231 1"),
    ("deliveries", "sqlite_autoindex_deliveries_1", "730000 1"),
]


async def test_a_destinations_queue_is_read_through_its_own_index_whatever_the_statistics(
    tmp_path: Path,
) -> None:
    """The relay's reads of one destination's queue (its due deliveries, its first row's
    time, a digest's bundling and members) stay on the (notifier, state) and digest
    indexes even where an ANALYZE's statistics make walking all deliveries by age look
    cheaper; that walk read a year of deliveries for each (18-34 ms at 200,000)."""
    path = tmp_path / "newsmon.db"
    store = await Store.open(path)
    await add_hits(store, 3, ["a"], NOW)
    await store.close()
    with connect(path) as conn:
        conn.execute("ANALYZE")
        conn.execute("DELETE FROM sqlite_stat1")
        conn.executemany("INSERT INTO sqlite_stat1 VALUES (?, ?, ?)", STATISTICS)
    store = await Store.open(path)
    try:
        async with traced(store) as statements:
            await store.due_deliveries("a", NOW, 10)
            await store.lane_times("a", None)
            assert await store.bundle_digest("a", 0.0, NOW, 10)
            for row in await store.due_digests("a", NOW):
                await store.digest(row)
    finally:
        await store.close()
    reads = [s for s in statements if "FROM deliveries" in s and "ORDER BY" in s]
    assert len(reads) >= 5
    for statement in reads:
        steps = plan(path, statement)
        assert "deliveries_due" in steps or "deliveries_digest" in steps, (statement, steps)
