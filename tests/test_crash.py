"""SIGKILL during delivery, again and again: after restarts every hit is delivered, and
nothing the database marked sent is ever sent again (RELIABILITY.md case 55, G4)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.daemon import Daemon
from tests.daemon import command, environment
from tests.db import connect
from tests.outbox import Answer, Hook, eventually
from tests.servers import Item, Publisher, Receiver

ITEMS = 8
KILLS = 10  # kills at most, half of them mid-request, half about the "sent" commit


def outbox(db: Path) -> dict[str, str]:
    """Delivery id -> state, read as another process would."""
    with connect(db) as conn:
        return dict(conn.execute("SELECT id, state FROM deliveries").fetchall())


async def start(path: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *command(), "run", "--config", str(path),
        stderr=asyncio.subprocess.DEVNULL, env=environment(),
    )  # fmt: skip


@pytest.mark.slow
async def test_sigkill_during_delivery_loses_nothing_and_resends_nothing_sent(
    publisher: Publisher, write_watchlist
) -> None:
    """Kill `newsmon run` with SIGKILL while a request hangs (the row is 'sending') or just
    after the receiver accepted (before or after the 'sent' commit), then restart: every
    hit ends sent and received; a duplicate is only ever of a row 'sending' at a kill; the
    database passes its integrity check and its delivery counts agree with the rows."""
    publisher.rss_items = [
        Item(f"Embassy story {i}", f"/s{i}", summary="Russia recalls its embassy staff.")
        for i in range(ITEMS)
    ]
    hook = Hook()
    await hook.start()
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=hook.url)
    db = path.parent / "newsmon.db"
    in_flight: set[str] = set()  # rows 'sending' at some kill: one extra copy allowed
    checks: list[tuple[int, set[str]]] = []  # (requests seen at a kill, rows sent then)
    try:
        for cycle in range(KILLS):
            seen, accepted = len(hook.seen), len(hook.accepted)
            # Even cycles: the request hangs (then fails). Odd: it is accepted at once,
            # and the kill lands just before or just after the 'sent' commit.
            hook.script = [Answer(500, hang=True)] if cycle % 2 == 0 else []
            hook.release = asyncio.Event()
            proc = await start(path)
            try:
                if cycle % 2 == 0:
                    await hook.wait_for(lambda: len(hook.seen) > seen, timeout=60)  # noqa: B023
                else:
                    await hook.wait_for(lambda: len(hook.accepted) > accepted, timeout=60)  # noqa: B023
            finally:
                proc.kill()
                await proc.wait()
            hook.release.set()
            states = outbox(db)
            in_flight |= {i for i, s in states.items() if s == "sending"}
            checks.append((len(hook.seen), {i for i, s in states.items() if s == "sent"}))
            if len(checks[-1][1]) == ITEMS:
                break  # all sent: nothing left to interrupt

        proc = await start(path)
        try:
            await eventually(lambda: set(outbox(db).values()) == {"sent"}, timeout=60)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        await hook.stop()

    states = outbox(db)
    assert len(states) == ITEMS
    assert set(states.values()) == {"sent"}
    assert set(states) == {s.delivery for s in hook.accepted}
    for killed_at, sent_then in checks:
        resent = [s.delivery for s in hook.seen[killed_at:] if s.delivery in sent_then]
        assert resent == [], "a delivery committed as sent was sent again"
    copies = Counter(s.delivery for s in hook.accepted)
    assert {d for d, n in copies.items() if n > 1} <= in_flight
    with connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        counted = conn.execute("SELECT notifier, state, n FROM delivery_tally WHERE n > 0")
        assert counted.fetchall() == [("hook", "sent", ITEMS)]  # the kills left no stray count


async def test_a_start_says_it_sends_again_what_a_crash_left_in_flight(
    publisher: Publisher, receiver: Receiver, write_watchlist, caplog: pytest.LogCaptureFixture
) -> None:
    """A row a crash left 'sending' goes out again, maybe a second copy: the start says
    so in one line, as a stop that cuts a send off does."""
    receiver.script = [503]
    publisher.rss_items = [Item("Embassy", "/e", summary="Moscow embassy closes")]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    async with Daemon.open(load_config(path)) as daemon:
        await daemon.run_once(delivery_deadline=0.5)
    with connect(path.parent / "newsmon.db") as conn:
        conn.execute("UPDATE deliveries SET state = 'sending'")  # as a SIGKILL mid-send
    with caplog.at_level(logging.WARNING):
        async with Daemon.open(load_config(path)):
            pass
    assert "deliveries_recovered count=1" in caplog.text
    with caplog.at_level(logging.WARNING):
        caplog.clear()
        async with Daemon.open(load_config(path)):
            pass
    assert "deliveries_recovered" not in caplog.text
