"""The address guard seen from a whole poll: a refused link costs its page, not its alert."""

from __future__ import annotations

from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.deliver import RetryPolicy
from tests.db import connect
from tests.hostile import Hostile, running, same_port
from tests.servers import Item, Receiver, rss
from tests.watchlists import watchlist


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


async def test_networks_opened_by_a_reload_are_followed_from_the_next_poll(
    write_watchlist,
) -> None:
    """`allow_networks` added to the watchlist of a running daemon applies to the links
    of its next poll, as the reload's log line says, without a restart."""
    feed_site = Hostile("127.0.0.1")
    async with running(feed_site), same_port("127.0.0.2") as (internal,):
        stories = [Item("Diplomats meet", "/a", summary="Russian diplomats met at the embassy.")]
        feed_site.pages["/rss.xml"] = ("application/rss+xml", rss(internal.base, stories).encode())
        text = watchlist(feeds=[feed_site.base + "/rss.xml"], fetch_articles=True)
        path = write_watchlist(text)
        async with Daemon.open(load_config(path)) as daemon:
            await daemon.run_once(delivery_deadline=1)
            assert internal.connections == 0
            opened = '[monitor]\nallow_networks = ["127.0.0.2/32"]\n'
            path.write_text(text.replace("[monitor]\n", opened), encoding="utf-8")
            assert await daemon.reload() is True
            stories.append(Item("Envoys talk", "/b", summary="Russian envoys talk at the embassy."))
            feed = rss(internal.base, stories).encode()
            feed_site.pages["/rss.xml"] = ("application/rss+xml", feed)
            await daemon.run_once(delivery_deadline=1)
        assert [r.target for r in internal.requests] == ["/b"]
