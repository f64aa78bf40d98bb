"""One feed poll end to end against real local servers and a real SQLite file."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import __version__
from monitor.config import load_config
from monitor.daemon import Daemon
from monitor.deliver import RetryPolicy
from monitor.pipeline import _canonical
from tests.db import connect
from tests.servers import Item, Publisher, Receiver

FAST_RETRY = RetryPolicy(base=0.01, cap=0.05)
MATCHING = Item(
    "Diplomats meet in Ankara",
    "/world/talks?utm_source=rss",
    summary="Russian and U.S. diplomats met over the work of their respective embassies.",
)
OTHER = Item("Prussian history", "/history/prussia", summary="The Prussian embassy reopened.")


async def run_once(path: Path) -> None:
    async with Daemon.open(load_config(path), retry=FAST_RETRY) as daemon:
        await daemon.run_once(delivery_deadline=30)


def count(db: Path, table: str) -> int:
    with connect(db) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


async def test_matching_story_alerts_once_and_other_does_not(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """A story mentioning Russia and embassies alerts once, signed; the Prussian one never."""
    publisher.rss_items = [MATCHING, OTHER]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    await run_once(path)

    assert len(receiver.accepted) == 1
    got = receiver.accepted[0]
    assert got.body["rule"] == "russia-embassy"
    assert got.body["title"] == "Diplomats meet in Ankara"
    assert got.body["url"] == f"{publisher.base}/world/talks"  # tracking parameter gone
    assert got.body["feed"] == "Test Gazette"
    assert got.body["matched"] == ["Russian", "embassies"]
    assert got.body["published"].endswith("Z")
    assert "embassies" in got.body["snippet"]
    expected = hmac.new(b"s3cret-hmac", got.raw, hashlib.sha256).hexdigest()
    assert got.headers["X-Newsmon-Signature"] == f"sha256={expected}"
    assert got.headers["X-Newsmon-Delivery"] == got.headers["Idempotency-Key"]
    assert count(path.parent / "newsmon.db", "entries") == 2


async def test_second_run_and_restart_send_nothing_new(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """Polling again, in the same process or after a restart, never alerts twice."""
    publisher.rss_items = [MATCHING]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    config = load_config(path)
    async with Daemon.open(config, retry=FAST_RETRY) as daemon:
        await daemon.run_once()
        await daemon.run_once()
    publisher.rss_items = [MATCHING, OTHER]  # the feed changed: it is fetched and parsed again
    await run_once(path)
    assert len(receiver.attempts) == 1
    assert count(path.parent / "newsmon.db", "hits") == 1


async def test_second_poll_is_conditional_and_304_changes_nothing(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """The cursor is sent back (If-None-Match, If-Modified-Since); a 304 stores nothing."""
    publisher.rss_items = [MATCHING]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    await run_once(path)
    db = path.parent / "newsmon.db"
    before = count(db, "entries"), count(db, "hits"), count(db, "deliveries")
    await run_once(path)
    first, second = publisher.hits("/rss.xml")
    assert "If-None-Match" not in first
    assert second["If-None-Match"].startswith('"')
    assert second["If-Modified-Since"] == "Wed, 01 Jan 2025 00:00:00 GMT"
    assert (count(db, "entries"), count(db, "hits"), count(db, "deliveries")) == before
    with connect(db) as conn:
        assert conn.execute("SELECT last_status FROM feeds").fetchone()[0] == 304


async def test_transient_failures_are_retried_and_delivered_exactly_once(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """A receiver answering 500, 500, then 200 gets the alert once, same delivery id."""
    receiver.script = [500, 500]
    publisher.rss_items = [MATCHING]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    await run_once(path)
    assert len(receiver.attempts) == 3
    assert len(receiver.accepted) == 1
    assert len({a.headers["X-Newsmon-Delivery"] for a in receiver.attempts}) == 1
    with connect(path.parent / "newsmon.db") as conn:
        assert conn.execute("SELECT state, attempts FROM deliveries").fetchone() == ("sent", 3)


async def test_permanent_refusal_ends_failed_with_reason(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """A 400 is not retried: the delivery ends 'failed' with the answer as its reason."""
    receiver.script = [400]
    publisher.rss_items = [MATCHING]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    await run_once(path)
    assert len(receiver.attempts) == 1
    with connect(path.parent / "newsmon.db") as conn:
        row = conn.execute("SELECT state, last_error FROM deliveries").fetchone()
    assert row == ("failed", "HTTP 400: nope")


@pytest.mark.parametrize("relative", [False, True], ids=["absolute-link", "relative-link"])
async def test_article_body_is_extracted_and_matched(
    publisher: Publisher, receiver: Receiver, write_watchlist, relative: bool
) -> None:
    """A story whose feed text does not match alerts on the words of its extracted page,
    whether the entry links to it by its full URL or by its path on the feed's site."""
    body = "\n\n".join(
        [
            "Officials from Moscow arrived on Tuesday for a round of talks that had been "
            "planned for months, according to people familiar with the schedule.",
            "The delegation toured the new embassy compound before meeting local ministers, "
            "who described the discussions as long, frank and useful for both sides.",
            "Further meetings are expected next month, when trade and energy questions "
            "will be on the agenda of both governments.",
        ]
    )
    publisher.rss_items = [Item("Talks resume", "/a/talks", body=body, summary="Talks resume.")]
    publisher.relative_links = relative
    path = write_watchlist(
        feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url, fetch_articles=True
    )
    await run_once(path)
    assert len(receiver.accepted) == 1
    assert receiver.accepted[0].body["matched"] == ["Moscow", "embassy"]
    assert receiver.accepted[0].body["url"] == f"{publisher.base}/a/talks"
    assert publisher.hits("/a/talks")
    with connect(path.parent / "newsmon.db") as conn:
        status, stored = conn.execute("SELECT body_status, body FROM entries").fetchone()
    assert status == "extracted"
    assert "embassy compound" in stored
    assert "Copyright" not in stored


async def test_first_poll_alerts_only_on_recent_entries(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """A new feed's old and undated entries are recorded as seen; later ones alert."""
    old = Item(
        "Old embassy story",
        "/old",
        summary="Moscow embassy news",
        published=datetime.now(UTC) - timedelta(days=3),
    )
    undated = Item("Undated", "/undated", summary="Kremlin embassy", published=None)
    future = Item(
        "Future-dated",
        "/future",
        summary="Russia embassy",
        published=datetime.now(UTC) + timedelta(days=2),
    )
    publisher.rss_items = [old, undated, future]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    await run_once(path)
    assert [a.body["title"] for a in receiver.accepted] == ["Future-dated"]
    assert count(path.parent / "newsmon.db", "entries") == 3
    later_old = Item(
        "Older but new to us",
        "/later",
        summary="Russian embassy",
        published=datetime.now(UTC) - timedelta(days=5),
    )
    publisher.rss_items = [later_old, old, undated, future]
    await run_once(path)
    assert [a.body["title"] for a in receiver.accepted] == ["Future-dated", "Older but new to us"]


async def test_same_story_in_two_feeds_alerts_once_and_names_both(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """The same article in an RSS and an Atom feed (tracking parameters differing) alerts
    once per rule, and the alert lists the other outlet under `also`."""
    publisher.rss_items = [MATCHING]
    publisher.atom_items = [
        Item(MATCHING.title + " (wire)", "/world/talks?fbclid=xyz", summary=MATCHING.summary)
    ]
    path = write_watchlist(
        feeds=[f"{publisher.base}/rss.xml", f"{publisher.base}/atom.xml"], hook=receiver.url
    )
    await run_once(path)
    assert len(receiver.accepted) == 1
    also = receiver.accepted[0].body["also"]
    assert len(also) == 1
    assert {also[0]["feed"], receiver.accepted[0].body["feed"]} == {
        "Test Gazette",
        "Test Atom Wire",
    }
    assert count(path.parent / "newsmon.db", "entries") == 2


async def test_also_names_each_other_outlet_once(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """`also` lists other outlets (DESIGN.md 4): a feed that posts one text under three
    links, and another with two copies, give an alert naming the other feed once."""
    wire = (
        "Russian diplomats left the embassy in Riga on Friday after the talks broke down, "
        "officials said, and the consulate in Daugavpils will close next month as well. "
        "The foreign ministry gave the staff a week to leave and said visas already issued "
        "would stay valid until they expire, while the embassy's school and its cultural "
        "centre will shut at the end of the term, according to a statement read out late "
        "on Friday evening by a spokeswoman in the capital."
    )
    publisher.rss_items = [Item("Envoys leave", f"/r/{n}", summary=wire) for n in range(3)]
    publisher.atom_items = [Item("Envoys leave Riga", f"/a/{n}", summary=wire) for n in range(2)]
    path = write_watchlist(
        feeds=[f"{publisher.base}/rss.xml", f"{publisher.base}/atom.xml"], hook=receiver.url
    )
    await run_once(path)
    [alert] = [a.body for a in receiver.accepted]
    assert [a["feed"] for a in alert["also"]] == ["Test Atom Wire"]
    assert alert["feed"] == "Test Gazette"


async def test_canonical_url_joins_two_links_to_one_story(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """Two feeds linking the same article under different URLs (a print and an AMP page)
    alert once when the pages declare the same canonical URL on their own site."""
    body = "The Kremlin said the embassy would reopen.\n\n" * 3
    publisher.rss_items = [Item("Reopen", "/story/1", body=body, canonical="/story/1")]
    publisher.atom_items = [Item("Reopen (AMP)", "/amp/story/1", body=body, canonical="/story/1")]
    path = write_watchlist(
        feeds=[f"{publisher.base}/rss.xml", f"{publisher.base}/atom.xml"],
        hook=receiver.url,
        fetch_articles=True,
    )
    await run_once(path)
    assert len(receiver.accepted) == 1
    assert len(receiver.accepted[0].body["also"]) == 1
    with connect(path.parent / "newsmon.db") as conn:
        keys = {r[0] for r in conn.execute("SELECT story_key FROM entries")}
    assert keys == {f"{publisher.base}/story/1"}


async def test_pages_naming_their_home_page_as_canonical_stay_apart(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """A site whose every page declares its home page canonical (a common CMS slip)
    publishes different stories, each of which alerts."""
    publisher.rss_items = [
        Item(f"Story {n}", f"/s/{n}", body=f"{text}\n\n" * 3, canonical="/")
        for n, text in enumerate(
            ["The Kremlin closed its embassy in Oslo.", "Moscow's embassy staff left Riga today."]
        )
    ]
    path = write_watchlist(
        feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url, fetch_articles=True
    )
    await run_once(path)
    assert sorted(a.body["title"] for a in receiver.accepted) == ["Story 0", "Story 1"]


@pytest.mark.parametrize(
    ("canonical", "link", "expected"),
    [
        ("https://news.example/a", "https://www.news.example/a?x=1", "https://news.example/a"),
        ("https://m.news.example/a", "https://news.example/amp/a", "https://m.news.example/a"),
        ("https://other.example/a", "https://news.example/a", "https://news.example/a"),
        (None, "https://news.example/a", "https://news.example/a"),
        ("https://news.example/", "https://news.example/a", "https://news.example/a"),
    ],
    ids=["same-site", "mobile-host", "foreign-site-refused", "none", "home-page-refused"],
)
def test_canonical_url_must_stay_on_its_site(
    canonical: str | None, link: str, expected: str
) -> None:
    """A page may not claim another site's URL as its canonical one (it could silence
    that site's stories)."""
    assert _canonical(canonical, link) == expected


async def test_daemon_prunes_text_past_retention_but_keeps_the_story(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """The scheduled prune drops old article text; the story still never alerts twice."""
    body = "The Kremlin said the embassy would reopen next week.\n\n" * 3
    publisher.rss_items = [Item("Reopening", "/reopen", body=body)]
    path = write_watchlist(
        feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url, fetch_articles=True
    )
    await run_once(path)
    with connect(path.parent / "newsmon.db") as conn:
        assert "Kremlin" in conn.execute("SELECT body FROM entries").fetchone()[0]
    with connect(path.parent / "newsmon.db") as conn:  # no 304: the feed is parsed
        conn.execute("UPDATE feeds SET etag = NULL, last_modified = NULL")  # again after pruning
    later = time.time() + 40 * 86400  # past the default 30-day retention
    async with Daemon.open(load_config(path), clock=lambda: later, retry=FAST_RETRY) as daemon:
        await daemon.prune()
        await daemon.run_once()
    with connect(path.parent / "newsmon.db") as conn:
        assert conn.execute("SELECT body FROM entries").fetchall() == [("",)]
    assert len(receiver.attempts) == 1


async def test_a_page_is_retried_after_a_transient_failure_and_fetched_once(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """A page answering 503 once is fetched again and extracted; the same article linked
    by a second feed is not fetched a second time."""
    body = "The Kremlin said the embassy would reopen next week, officials said.\n\n" * 3
    publisher.rss_items = [Item("Reopening", "/story/9", body=body)]
    publisher.failures["/story/9"] = 1
    path = write_watchlist(
        feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url, fetch_articles=True
    )
    await run_once(path)
    assert len(publisher.hits("/story/9")) == 2
    assert len(receiver.accepted) == 1

    publisher.atom_items = [Item("Reopening (wire)", "/story/9", body=body)]
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            'url = "' + f"{publisher.base}/rss.xml" + '"',
            'url = "'
            + f"{publisher.base}/rss.xml"
            + '"\n\n[[feeds]]\nurl = "'
            + f"{publisher.base}/atom.xml"
            + '"',
        ),
        encoding="utf-8",
    )
    await run_once(path)
    assert len(publisher.hits("/story/9")) == 2
    with connect(path.parent / "newsmon.db") as conn:
        statuses = [r[0] for r in conn.execute("SELECT body_status FROM entries")]
    assert statuses == ["extracted", "extracted"]


async def test_the_same_guid_twice_in_one_feed_is_one_entry(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """Case 28: two items sharing a GUID in one feed are one entry (the first listed) and
    at most one alert."""
    publisher.rss_items = [
        Item("Kremlin embassy (first)", "/a", summary="Moscow embassy", guid="same"),
        Item("Kremlin embassy (second)", "/b", summary="Moscow embassy", guid="same"),
    ]
    path = write_watchlist(feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url)
    await run_once(path)
    with connect(path.parent / "newsmon.db") as conn:
        assert conn.execute("SELECT key, title FROM entries").fetchall() == [
            ("id:same", "Kremlin embassy (first)")
        ]
    assert [a.body["title"] for a in receiver.accepted] == ["Kremlin embassy (first)"]


async def test_a_syndicated_summary_under_other_links_alerts_once(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """Feeds only: two outlets carry the same wire summary under their own links and
    headlines; the parser's fingerprints file the second copy under the first story, so
    the rule alerts once and names the other outlet."""
    wire = (
        "Russian and U.S. diplomats met in Ankara on Tuesday over the work of their "
        "respective embassies, the first such talks in more than a year, officials from "
        "both delegations said after six hours behind closed doors. The talks covered "
        "staffing levels, visas for diplomats and the return of seized properties, and "
        "will continue next month in Istanbul, according to a joint statement."
    )
    publisher.rss_items = [Item("Diplomats meet in Ankara", "/world/talks", summary=wire)]
    publisher.atom_items = [Item("Envoys hold talks", "/wire/ankara-envoys", summary=wire)]
    path = write_watchlist(
        feeds=[f"{publisher.base}/rss.xml", f"{publisher.base}/atom.xml"], hook=receiver.url
    )
    await run_once(path)
    assert len(receiver.accepted) == 1
    assert len(receiver.accepted[0].body["also"]) == 1
    assert count(path.parent / "newsmon.db", "entries") == 2


def localhost_answered_from_hosts_file() -> bool:
    """Whether the C library answers ``localhost`` from /etc/hosts, which must map it to
    127.0.0.1 and be consulted first: only then does resolving the name stay on this
    machine (glibc does not treat ``localhost`` specially)."""
    try:
        nsswitch = Path("/etc/nsswitch.conf").read_text(encoding="utf-8").splitlines()
        hosts = Path("/etc/hosts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    sources = [line.split(":", 1)[1].split() for line in nsswitch if line.startswith("hosts:")]
    mapped = any(
        line.split()[:1] == ["127.0.0.1"] and "localhost" in line.split() for line in hosts
    )
    return bool(sources) and sources[0][:1] == ["files"] and mapped


@pytest.mark.skipif(
    not localhost_answered_from_hosts_file(),
    reason="localhost may be looked up in DNS here: tests talk to loopback only",
)
async def test_every_request_names_newsmon_takes_gzip_and_keeps_no_cookie(
    publisher: Publisher, write_watchlist
) -> None:
    """RELIABILITY.md case 75: feeds and article pages are asked for with
    ``User-Agent: newsmon/<version> (+<project URL>)`` and an ``Accept-Encoding`` that
    offers gzip; a cookie the publisher sets with a feed is not sent back with the next
    poll. That feed is named ``localhost``, as a cookie jar keeps none for an address."""
    publisher.extra_headers["Set-Cookie"] = "tracker=abc123; Path=/"
    publisher.atom_items = [Item("Talks", "/talks", body="Diplomats met at the embassy today.")]
    named = publisher.base.replace("127.0.0.1", "localhost") + "/rss.xml"
    path = write_watchlist(feeds=[named, f"{publisher.base}/atom.xml"], fetch_articles=True)
    async with Daemon.open(load_config(path)) as daemon:
        await daemon.run_once()
        publisher.rss_items.append(Item("Later", "/later"))  # a 200 again, not a 304
        await daemon.run_once()
    paths = [p for p, _ in publisher.requests]
    assert sorted(paths) == ["/atom.xml", "/atom.xml", "/rss.xml", "/rss.xml", "/talks"]
    for _, headers in publisher.requests:
        assert (
            headers["User-Agent"] == f"newsmon/{__version__} (+https://github.com/newsmon/newsmon)"
        )
        assert "gzip" in headers["Accept-Encoding"].split(", ")
        assert "Cookie" not in headers


async def test_a_headline_or_lede_repeated_on_the_page_counts_once(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """The page's text starts with the headline, or the feed's summary is the page's first
    paragraph: each mention in them is one mention, not two (ATLEAST/2 needs two)."""
    rest = "Officials toured the compound on Tuesday.\n\nTalks continue next month."
    lede = "The Kremlin sent an envoy on Monday."
    publisher.rss_items = [
        Item("Kremlin envoy visits embassy", "/headline", body=rest),
        Item("Envoy visits", "/lede", body=f"{lede}\n\n{rest}", summary=lede),
        Item("Kremlin envoy visits", "/two", body=f"Moscow confirmed it.\n\n{rest}"),
    ]
    path = write_watchlist(
        feeds=[f"{publisher.base}/rss.xml"],
        hook=receiver.url,
        fetch_articles=True,
        query="ATLEAST/2 @russia",
    )
    await run_once(path)
    assert [a.body["title"] for a in receiver.accepted] == ["Kremlin envoy visits"]
    with connect(path.parent / "newsmon.db") as conn:
        stored = dict(conn.execute("SELECT title, body FROM entries").fetchall())
    assert stored["Kremlin envoy visits embassy"] == rest.replace("\n\n", "\n")
    assert stored["Envoy visits"].startswith(lede)  # the summary, not the page, gave way


async def test_a_title_repeated_in_the_feeds_own_text_counts_once(
    publisher: Publisher, receiver: Receiver, write_watchlist
) -> None:
    """Feeds repeat the title as the description, as its first sentence, or as the first
    paragraph of their full text: one mention there is one mention (ATLEAST/2 needs
    two), pages or not."""
    publisher.rss_items = [
        Item("Russia expels envoys", "/as-summary", summary="Russia expels envoys"),
        Item(
            "Russia recalls envoy",
            "/as-lede",
            summary="Russia recalls envoy. The ministry gave no reason on Monday.",
        ),
        Item(
            "Kremlin says no",
            "/as-content",
            content="<p>Kremlin says no</p><p>Officials declined to comment.</p>",
        ),
        Item(
            "Kremlin says no again",
            "/two",
            content="<p>Kremlin says no again</p><p>Moscow confirmed it.</p>",
        ),
    ]
    path = write_watchlist(
        feeds=[f"{publisher.base}/rss.xml"], hook=receiver.url, query="ATLEAST/2 @russia"
    )
    await run_once(path)
    assert [a.body["title"] for a in receiver.accepted] == ["Kremlin says no again"]
    with connect(path.parent / "newsmon.db") as conn:
        stored = dict(conn.execute("SELECT title, body FROM entries").fetchall())
    assert stored["Kremlin says no"] == "Officials declined to comment."
