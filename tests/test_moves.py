"""A feed that moved: the stored URL follows a permanent redirect only once confirmed."""

from __future__ import annotations

import asyncio

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.models import Location
from monitor.moves import CONFIRMATIONS, follow
from tests.db import connect
from tests.servers import Item, Publisher

OLD, NEW = "https://feeds.example/old.xml", "https://feeds.example/new.xml"


def test_a_move_is_adopted_after_repeated_confirmation() -> None:
    """The same permanent redirect on CONFIRMATIONS polls in a row moves the feed."""
    location = Location(OLD)
    for seen in range(1, CONFIRMATIONS):
        location = follow(location, NEW, moved=True)
        assert location == Location(OLD, NEW, seen)
    assert follow(location, NEW, moved=True) == Location(NEW)


@pytest.mark.parametrize(
    ("final", "moved"),
    [(NEW, False), (OLD, False), (NEW.replace("https:", "http:"), True)],
    ids=["temporary-redirect", "no-redirect", "https-to-http-downgrade"],
)
def test_what_resets_or_never_counts(final: str, moved: bool) -> None:
    """A temporary redirect, no redirect, or a downgrade to http resets the count."""
    assert follow(Location(OLD, NEW, 2), final, moved) == Location(OLD)


def test_a_different_target_starts_counting_again() -> None:
    """A redirect to yet another URL is a new move, confirmed from one."""
    other = "https://feeds.example/other.xml"
    assert follow(Location(OLD, NEW, 2), other, moved=True) == Location(OLD, other, 1)


def feed_columns(db: object) -> tuple[str, str | None, int, str | None]:
    with connect(db) as conn:  # type: ignore[arg-type]
        return conn.execute(  # type: ignore[no-any-return]
            "SELECT fetch_url, moved_to, moved_confirmations, cursor_url FROM feeds"
        ).fetchone()


async def test_daemon_follows_a_confirmed_move_and_keeps_validators_with_their_url(
    publisher: Publisher, write_watchlist, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three polls through a 301 move the feed; validators are only sent back to the URL
    that gave them, so the first conditional request goes to the new URL."""
    publisher.redirects["/old.xml"] = (301, "/rss.xml")
    publisher.rss_items = [Item("One", "/1")]
    path = write_watchlist(feeds=[f"{publisher.base}/old.xml"])
    db = path.parent / "newsmon.db"
    async with Daemon.open(load_config(path)) as daemon:
        for seen in range(1, CONFIRMATIONS):
            await daemon.run_once()
            assert feed_columns(db)[1:3] == (f"{publisher.base}/rss.xml", seen)
        assert all("If-None-Match" not in h for h in publisher.hits("/old.xml"))
        await daemon.run_once()
        assert feed_columns(db)[:3] == (f"{publisher.base}/rss.xml", None, 0)
        await daemon.run_once()
    assert await asyncio.to_thread(main, ["feeds", "--config", str(path)]) == 0
    assert f"moved to {publisher.base}/rss.xml" in capsys.readouterr().out
    assert len(publisher.hits("/old.xml")) == CONFIRMATIONS
    assert "If-None-Match" in publisher.hits("/rss.xml")[-1]
    with connect(db) as conn:
        assert conn.execute("SELECT last_status, url FROM feeds").fetchone() == (
            304,
            f"{publisher.base}/old.xml",  # the feed keeps its watchlist identity
        )
