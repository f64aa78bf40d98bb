"""The lxml fast path agrees with feedparser on identity, or steps aside for it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor import fastparse
from monitor.jsonfeed import looks_like_json_feed
from monitor.models import Entry
from monitor.parse import ParseError, parse_feed, read_fast, read_feedparser
from tests.corpus import FEEDS

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>
<title>Gazette &amp; Co</title><ttl>15</ttl>
<item><title>Talks &lt;b&gt;resume&lt;/b&gt;</title>
<link> https://example.org/a?utm_source=x </link>
<guid isPermaLink="false"> urn:a </guid><pubDate>Tue, 10 Jun 2025 09:30:00 +0200</pubDate>
<description>&lt;p&gt;Envoys met.&lt;/p&gt;</description>
<content:encoded><![CDATA[<p>Full <b>text</b>.</p>]]></content:encoded></item>
<item><title>No guid</title><link>https://example.org/b</link></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Wire</title>
<entry><id>tag:wire,2025:1</id><title type="html">A &amp;amp; B</title>
<link rel="alternate" href="https://wire.example/1"/><link rel="self" href="https://wire.example/1.atom"/>
<updated>2025-06-10T07:30:00.5Z</updated><summary>Short.</summary></entry>
</feed>"""


Read = tuple[str | None, list[Entry], float | None]


def fast_entries(body: bytes, headers: dict[str, str] | None = None) -> Read | None:
    """The fast path's reading with every entry's text converted; None where it steps
    aside, for the whole document or for a field it reads on demand."""
    read = read_fast(body, headers or {})
    if read is None:
        return None
    try:
        return read[0], [d.build("") for d in read[1]], read[2]
    except fastparse.Unusual:
        return None


def feedparser_entries(body: bytes, headers: dict[str, str] | None = None) -> Read:
    title, drafts, ttl = read_feedparser(body, headers or {})
    return title, [d.build("") for d in drafts], ttl


def _same(body: bytes, headers: dict[str, str] | None = None) -> None:
    fast = fast_entries(body, headers)
    assert fast is not None
    assert fast == feedparser_entries(body, headers)


def test_rss_fields_match_feedparser() -> None:
    """A plain RSS 2.0 feed reads the same, field by field, on both paths."""
    _same(RSS)
    title, entries, ttl = fast_entries(RSS) or (None, [], None)
    assert (title, ttl) == ("Gazette & Co", 900.0)
    assert entries[0].key == "id:urn:a"
    assert entries[0].published == datetime(2025, 6, 10, 7, 30, tzinfo=UTC)
    assert entries[1].key == "url:https://example.org/b"


def test_atom_fields_match_feedparser() -> None:
    """Atom with an alternate and a self link, html title and fractional seconds."""
    _same(ATOM)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<rss version='2.0'><channel><item><title>x</title></item>", "malformed"),
        (RSS.replace(b"https://example.org/b", b"/b"), "relative link"),
        (RSS.replace(b"<channel>", b"<channel xml:base='https://example.org/'>"), "xml:base"),
        (
            RSS.replace(b"utf-8", b"utf-16")
            .replace(b"<channel>", b"<channel xml:base='https://example.org/'>")
            .decode()
            .encode("utf-16"),
            "xml:base in UTF-16, which a byte search for it would miss",
        ),
        (RSS.replace(b"+0200", b"Europe/Paris"), "a date of another shape"),
        (RSS.replace(b"<ttl>", b"<item><item/></item><ttl>"), "nested items"),
        (b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'/>", "RSS 1.0"),
    ],
)
def test_unusual_documents_go_to_feedparser(body: bytes, why: str) -> None:
    """Outside the common case the fast path steps aside ({why})."""
    assert fast_entries(body) is None, why


def test_an_unusual_field_counts_only_where_it_is_read() -> None:
    """A field outside the fast path's case sends the document to feedparser while its item
    is new; once the item is seen, the fast path reads the rest, with the same keys."""
    body = RSS.replace(b"+0200", b"Europe/Paris")  # the first item's date
    assert read_fast(body, {}) is not None  # identity is plain: only the date is not
    new = parse_feed(body, {})
    assert list(new.entries) == feedparser_entries(body)[1]
    later = parse_feed(body, {}, seen={"id:urn:a"})
    assert [e.key for e in later.entries] == ["url:https://example.org/b"]
    assert later.entries == new.entries[1:]


def test_an_identity_that_needs_an_unusual_date_goes_to_feedparser() -> None:
    """No guid and a link that names no host: the key is a hash of title and date, so a
    date outside the fast path's case sends the document to feedparser, not an error."""
    item = b"<item><title>T</title><link>http://</link><pubDate>2025-06-10</pubDate></item>"
    body = RSS.replace(b"<ttl>15</ttl>", b"<ttl>15</ttl>" + item)
    assert list(parse_feed(body, {}).entries) == feedparser_entries(body)[1]


def test_charset_contradicting_the_declaration_goes_to_feedparser() -> None:
    """An HTTP charset that disagrees with the XML declaration is feedparser's call."""
    assert fastparse.read(RSS, "application/rss+xml; charset=iso-8859-1") is None
    assert fastparse.read(RSS, "application/rss+xml; charset=UTF-8") is not None


def test_parse_feed_takes_the_fast_path_and_still_reads_the_rest() -> None:
    """parse_feed gives the same entries for a plain feed, and still reads a malformed one."""
    assert list(parse_feed(RSS, {}).entries) == feedparser_entries(RSS)[1]
    broken = RSS.replace(b"</channel></rss>", b"")
    assert [e.key for e in parse_feed(broken, {}).entries] == [
        "id:urn:a",
        "url:https://example.org/b",
    ]


def _corpus_feeds() -> list[bytes]:
    files = sorted(
        p for p in FEEDS.rglob("*") if p.is_file() and p.suffix in (".xml", ".rss", ".atom")
    )
    return [p.read_bytes() for p in files]


@pytest.mark.slow
@pytest.mark.skipif(not FEEDS.is_dir(), reason="corpus absent (../shared/corpus)")
def test_corpus_identity_agrees_wherever_the_fast_path_answers() -> None:
    """On every corpus feed the fast path reads, entries, keys and links equal feedparser's."""
    answered = entries = 0
    agree = {"title": 0, "summary": 0, "content": 0, "published": 0}
    for body in _corpus_feeds():
        if looks_like_json_feed(body, ""):
            continue
        fast = fast_entries(body)
        if fast is None:
            continue
        try:
            reference = feedparser_entries(body)
        except ParseError:
            pytest.fail("the fast path read a document feedparser rejects")
        answered += 1
        assert [(e.key, e.url) for e in fast[1]] == [(e.key, e.url) for e in reference[1]]
        for ours, theirs in zip(fast[1], reference[1], strict=True):
            entries += 1
            for name in agree:
                agree[name] += getattr(ours, name) == getattr(theirs, name)
    assert answered > 400
    shares = {name: count / entries for name, count in agree.items()}
    print(f"fast path: {answered} feeds, {entries} entries, field agreement {shares}")
    assert min(shares.values()) > 0.95
