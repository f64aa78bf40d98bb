"""Feed parsing and URL normalization: stable identity and clean text."""

from __future__ import annotations

import pytest

from monitor.parse import ParseError, parse_feed
from monitor.urls import normalize_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Example.ORG:80/a?b=2&a=1#frag", "http://example.org/a?a=1&b=2"),
        ("https://example.org:443/x?utm_source=rss&id=5&fbclid=abc", "https://example.org/x?id=5"),
        ("https://example.org", "https://example.org/"),
        ("https://user:pw@example.org/p", "https://example.org/p"),
        ("https://example.org:8443/p", "https://example.org:8443/p"),
        ("https://[::1]:8080/p", "https://[::1]:8080/p"),
        ("javascript:alert(1)", None),
        ("file:///etc/passwd", None),
        ("ftp://example.org/x", None),
        ("https://example.org:99999/", None),
    ],
)
def test_normalize_url(url: str, expected: str | None) -> None:
    """One spelling per article: tracking, defaults and fragments gone; only http(s)."""
    assert normalize_url(url) == expected


RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Wire &amp; Co</title>
<item><title>With guid</title><guid>tag:wire,1</guid><link>https://w.example/a?utm_medium=x</link>
<description>&lt;p&gt;Hello &lt;b&gt;world&lt;/b&gt;&lt;/p&gt;&lt;script&gt;x()&lt;/script&gt;
</description>
<pubDate>Thu, 27 Feb 2025 09:58:00 GMT</pubDate></item>
<item><title>Link only</title><link>https://w.example/b</link></item>
<item><title>Nothing\x01 else</title></item>
</channel></rss>"""


def test_entries_have_stable_keys_and_plain_text() -> None:
    """guid first, then the normalized link, then a hash; HTML and control chars removed."""
    feed = parse_feed(RSS, {"Content-Type": "application/rss+xml"})
    assert feed.title == "Wire & Co"
    first, second, third = feed.entries
    assert first.key == "id:tag:wire,1"
    assert first.url == "https://w.example/a"
    assert first.summary == "Hello world"
    assert first.published is not None
    assert first.published.isoformat().startswith("2025-02-27T09:58")
    assert second.key == "url:https://w.example/b"
    assert third.key.startswith("hash:")
    assert third.title == "Nothing else"
    assert parse_feed(RSS, {}).entries == feed.entries  # same bytes, same identity


def test_truncated_feed_still_yields_its_entries() -> None:
    """A feed cut off mid-document (bozo) gives the entries before the cut."""
    feed = parse_feed(RSS[: RSS.index(b"<item><title>Nothing")], {})
    assert [e.title for e in feed.entries] == ["With guid", "Link only"]


@pytest.mark.parametrize(
    "body",
    [b"", b"<html><body><p>Not a feed</p></body></html>", b"\x00\x01garbage"],
    ids=["empty", "html", "binary"],
)
def test_not_a_feed_is_a_parse_error(body: bytes) -> None:
    """Bytes with no feed in them raise ParseError, which the poll records as a failure."""
    with pytest.raises(ParseError):
        parse_feed(body, {"Content-Type": "text/html"})
