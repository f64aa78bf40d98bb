"""The address guard seen from a whole poll: a refused link costs its page, not its alert."""

from __future__ import annotations

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.deliver import RetryPolicy
from tests.db import connect
from tests.hostile import Hostile, running, same_port
from tests.servers import Item, Receiver, rss


async def test_a_link_to_an_internal_address_is_blocked_and_still_alerts(
    receiver: Receiver, write_watchlist
) -> None:
    """A feed item linking to an internal address (the metadata-service pattern) is stored
    with body_status "blocked", nothing connects there, and the alert goes out from the
    feed's own text, once (RELIABILITY.md 1)."""
    feed_site = Hostile("127.0.0.1")
    async with running(feed_site), same_port("127.0.0.2") as (internal,):
        story = Item(
            "Diplomats meet",
            "/latest/meta-data/",
            summary="Russian diplomats met at the embassy.",
        )
        feed = rss(internal.base, [story]).encode()
        feed_site.pages["/rss.xml"] = ("application/rss+xml", feed)
        path = write_watchlist(
            feeds=[feed_site.base + "/rss.xml"], hook=receiver.url, fetch_articles=True
        )
        retry = RetryPolicy(base=0.01, cap=0.05)
        async with Daemon.open(load_config(path), retry=retry) as daemon:
            await daemon.run_once(delivery_deadline=30)
        assert internal.connections == 0
        assert [a.body["url"] for a in receiver.accepted] == [internal.base + "/latest/meta-data/"]
        with connect(path.parent / "newsmon.db") as db:
            (status,) = db.execute("SELECT body_status FROM entries").fetchone()
        assert status == "blocked"
