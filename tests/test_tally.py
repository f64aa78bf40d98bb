"""The running counts behind the status line and the metrics (migration 11): deliveries
by destination and state, hits by rule, true to the rows through every change the outbox
makes, and made from the rows by an upgrade."""

from __future__ import annotations

import random
from pathlib import Path

import aiohttp

from monitor.deliver import Relay, RetryPolicy
from monitor.notify.webhook import WebhookNotifier
from monitor.secrets import Secret
from monitor.store import Store
from tests.db import connect, plan
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
        assert await store.requeue(failed, clock())
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


async def test_the_outbox_listing_reads_the_newest_deliveries_by_age(tmp_path: Path) -> None:
    """`newsmon deliveries` reads the newest rows through ``deliveries_created``, without
    sorting every delivery ever stored."""
    path = tmp_path / "newsmon.db"
    store = await Store.open(path)
    try:
        await add_hits(store, 3, ["a"], NOW)
        statements: list[str] = []
        await store._in_thread(lambda db: db.set_trace_callback(statements.append))
        rows = await store.deliveries(limit=2)
        await store._in_thread(lambda db: db.set_trace_callback(None))
    finally:
        await store.close()
    assert [r.title for r in rows] == ["story 2", "story 1"]
    (listing,) = [s for s in statements if "FROM deliveries" in s]
    steps = plan(path, listing)
    assert "SCAN d USING INDEX deliveries_created" in steps
    assert "TEMP B-TREE" not in steps
