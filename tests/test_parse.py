"""Feed parsing and URL normalization: stable identity and clean text."""

from __future__ import annotations

import codecs
import hashlib

import pytest

from monitor import fastparse
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


XHTML_PAGE = (  # as feedvalidator's atom/must/feed_missing2.xml: comments, a doctype, a page
    b"<!-- moved -->\n<!DOCTYPE html PUBLIC '-//W3C//DTD XHTML 1.0 Strict//EN'\n"
    b"  'http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd'>\n<html lang='en'><body><p>x</body>"
)

# What no feed at all looks like, as the corpus (../shared/corpus/feeds) has it: before,
# each said "not an RSS, Atom or JSON feed", and after a colon the name of feedparser's or
# expat's exception (NonXMLContentType, SAXParseException), or "not a JSON Feed: ...".
NOT_FEEDS = {
    "empty": (b"", "application/rss+xml", "empty response"),
    "blank": (b" \r\n\t", "", "empty response"),
    "html-typed": (
        b"<html><body><p>Sign in</p></body></html>",
        "text/html; charset=utf-8",
        "not a feed: the server sent text/html",
    ),
    "html-as-rss": (
        b"<!DOCTYPE html>\n<html lang=en><head><title>Sign in</title></head><body><br></body>",
        "application/rss+xml",
        "not a feed: the server sent an HTML page (Content-Type: application/rss+xml)",
    ),
    "xhtml-untyped": (XHTML_PAGE, "", "not a feed: the server sent an HTML page"),
    "gzip-bytes": (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage",
        "application/xml",
        "not a feed: the response is neither XML nor JSON (Content-Type: application/xml)",
    ),
    "plain-text": (
        b"Service temporarily unavailable",
        "text/plain; charset=us-ascii",
        "not a feed: the response is neither XML nor JSON (Content-Type: text/plain)",
    ),
    "two-roots": (
        b"<a/>\n<b/>",
        "",
        "malformed XML at line 2, column 1: junk after document element",
    ),
    "control-byte": (
        b"<error>\x01</error>",
        "text/xml",
        "malformed XML at line 1, column 8: not well-formed (invalid token)",
    ),
    # line numbers count the DOCTYPE's lines, though feedparser is given the text without it
    "mismatched-after-doctype": (
        b'<?xml version="1.0"?>\n<!DOCTYPE x [\n<!ENTITY a "b">\n]>\n<x>\n<y></x>',
        "",
        "malformed XML at line 6, column 6: mismatched tag",
    ),
    # and columns on the DOCTYPE's line
    "mismatched-after-doctype-on-one-line": (
        b'<?xml version="1.0"?><!DOCTYPE foo><foo><bar>x</baz></foo>',
        "",
        "malformed XML at line 1, column 49: mismatched tag",
    ),
    "mismatched-after-doctype-cr-lines": (
        b'<?xml version="1.0"?>\r<!DOCTYPE foo [\r<!ENTITY a "b">\r]>\r'
        b"<foo>\r  <bar></baz>\r</foo>",
        "",
        "malformed XML at line 6, column 10: mismatched tag",
    ),
    "cut-off": (
        b"<status>\n<code>503",
        "application/xml",
        "truncated XML: the document ends at line 2 with elements open",
    ),
    "comments-only": (
        b'<?xml version="1.0"?>\n<!-- nothing here -->\n',
        "application/rss+xml",
        "not a feed: XML without any element",
    ),
    "other-xml": (
        b'<?xml version="1.0"?><channel><title>x</title></channel>',
        "",
        "not a feed: no RSS or Atom in this XML (root element <channel>)",
    ),
    "json-untyped": (
        b'{"rss": {"channel": {}}}',
        "text/plain",
        "not a feed: JSON without a jsonfeed.org version at its start (Content-Type: text/plain)",
    ),
    "json-no-version": (
        b'{"rss": {"channel": {"item": []}}}',
        "application/json",
        "not a feed: JSON without a jsonfeed.org version",
    ),
    "json-array": (
        b"[1, 2]",
        "application/json",
        "not a feed: JSON without a jsonfeed.org version",
    ),
    "json-cut-off": (
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [',
        "application/feed+json",
        "malformed JSON at line 1, column 59: expecting value",
    ),
    "json-deep": (b"[" * 100_000, "application/json", "malformed JSON: nested too deeply to read"),
    "json-latin1": (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "caf\xe9"}',
        "application/json",
        "malformed JSON: not UTF-8 (byte 61)",
    ),
    "html-in-utf-16": (
        codecs.BOM_UTF16_LE + "<html><body>Sign in</body></html>".encode("utf-16-le"),
        "",
        "not a feed: the server sent an HTML page",
    ),
    "json-long-number": (
        b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": ' + b"1" * 5000 + b"}]}",
        "application/feed+json",
        "malformed JSON: a number too long to read",
    ),
}


# no channel: a shape fastparse leaves to feedparser, which must read it still
WIDE_RSS = (
    '<?xml version="1.0" encoding="UTF-16"?>'
    "<rss><item><title>Café talks</title><guid>g1</guid></item></rss>"
)
UNDECLARED = WIDE_RSS.replace(' encoding="UTF-16"', "")
BARE = WIDE_RSS.split("?>", 1)[1]
WIDE_JSON = (
    '{"version": "https://jsonfeed.org/version/1.1",'
    ' "items": [{"id": "g1", "title": "Café talks"}]}'
)
WIDE = {  # id: (body, Content-Type)
    "utf-16-le-declared": (
        codecs.BOM_UTF16_LE + WIDE_RSS.encode("utf-16-le"),
        "text/xml; charset=utf-16",
    ),
    "utf-16-be-undeclared": (
        codecs.BOM_UTF16_BE + UNDECLARED.encode("utf-16-be"),
        "",
    ),
    "utf-32-le": (codecs.BOM_UTF32_LE + WIDE_RSS.encode("utf-32-le"), "application/rss+xml"),
    # no mark, no declaration: told by its first "<"
    "utf-16-le-unmarked": (BARE.encode("utf-16-le"), "text/xml"),
    "utf-32-be-unmarked": (BARE.encode("utf-32-be"), "text/xml"),
    "json-utf-16": (codecs.BOM_UTF16_LE + WIDE_JSON.encode("utf-16-le"), "application/feed+json"),
}


@pytest.mark.parametrize(("body", "content_type"), WIDE.values(), ids=WIDE)
def test_a_feed_in_utf_16_or_32_is_read_by_its_first_bytes(body: bytes, content_type: str) -> None:
    """A feed in a wide encoding, told by its byte order mark or its first "<", is read like
    any other once made UTF-8 (its declaration and Content-Type too): a JSON Feed was "no
    feed", and one without mark or declaration malformed."""
    assert fastparse.read(WIDE_RSS.encode()) is None  # so the XML ones take feedparser
    headers = {"Content-Type": content_type} if content_type else {}
    entries = parse_feed(body, headers).entries
    assert [(e.key, e.title) for e in entries] == [("id:g1", "Café talks")]


def test_a_wide_encoding_cut_short_says_so() -> None:
    body = codecs.BOM_UTF16_LE + WIDE_RSS.encode("utf-16-le")[:-1]
    with pytest.raises(ParseError, match=r"^malformed UTF-16 at byte \d+$"):
        parse_feed(body, {})


def test_a_doctype_in_a_comment_or_cdata_is_text() -> None:
    """Only the prolog's DOCTYPE is cut out (case 22): "<!DOCTYPE" in a comment or in a
    CDATA section is text, and cutting from it to the next ">" broke a valid feed."""
    feed = (
        b'<!-- the item below says "<!DOCTYPE" -->\n<rss>\n<item><guid>g</guid>'
        b"<description><![CDATA[ <!DOCTYPE ]]></description></item>\n</rss>"
    )
    assert fastparse.read(feed) is None  # feedparser's case, where the DOCTYPE is cut
    assert [e.summary for e in parse_feed(feed, {}).entries] == ["<!DOCTYPE"]


@pytest.mark.parametrize(("body", "content_type", "message"), NOT_FEEDS.values(), ids=NOT_FEEDS)
def test_not_a_feed_says_what_is_wrong(body: bytes, content_type: str, message: str) -> None:
    """Bytes with no feed in them raise ParseError, whose message (the poll's logged and
    stored error) says in words what is wrong and the evidence, never a class name."""
    with pytest.raises(ParseError) as raised:
        parse_feed(body, {"Content-Type": content_type})
    assert str(raised.value) == message


def test_a_publishers_words_in_the_message_are_one_short_line() -> None:
    """A root element name or a content type the publisher chose is shown capped and
    without controls: the message stays one line of bounded length."""
    with pytest.raises(ParseError) as root:
        parse_feed(b"<" + b"x" * 5000 + b"/>", {})
    with pytest.raises(ParseError) as media:
        parse_feed(b"down", {"Content-Type": "text/\x07plain\x1b[31m" + "x" * 5000})
    for message in str(root.value), str(media.value):
        assert len(message) < 120
        assert message.isprintable()
    assert str(root.value).endswith(f"(root element <{'x' * 39}…>)")
    assert str(media.value).startswith("not a feed: the response is neither XML nor JSON")


JSON_FEED = b"""{"version": "https://jsonfeed.org/version/1.1", "title": "Wire <b>JSON</b>",
 "items": [
  {"id": "tag:wire,1", "url": "https://w.example/a?utm_medium=x", "title": "With id",
   "content_html": "<p>Hello <b>world</b></p><script>x()</script>",
   "date_published": "2025-02-27T09:58:00+01:00"},
  {"id": 42, "title": "Numeric id", "content_text": "a < b & c"},
  {"url": "https://w.example/b", "title": "Link only", "summary": "Short"},
  {"title": "Nothing\\u0001 else", "date_modified": "2025-02-27T10:00:00Z"},
  {"id": "", "title": 1000, "url": 1.5, "content_html": true, "date_published": "soon"},
  "not an item"
 ]}"""


@pytest.mark.parametrize(
    "content_type",
    ["application/feed+json", "application/json; charset=utf-8", "text/plain", ""],
)
def test_json_feed_maps_to_entries_with_the_same_identity_rules(content_type: str) -> None:
    """JSON Feed 1.1 by type or by its version: id, else normalized url, else a hash."""
    feed = parse_feed(JSON_FEED, {"Content-Type": content_type})
    assert feed.title == "Wire <b>JSON</b>"  # JSON Feed titles are plain text
    with_id, numeric, link, bare, wrong = feed.entries
    assert with_id.key == "id:tag:wire,1"
    assert with_id.url == "https://w.example/a"
    assert with_id.content == "Hello world"
    assert with_id.published is not None
    assert with_id.published.isoformat() == "2025-02-27T08:58:00+00:00"
    assert numeric.key == "id:42"
    assert numeric.content == "a < b & c"  # content_text is text, not HTML
    assert (link.key, link.summary) == ("url:https://w.example/b", "Short")
    assert bare.key.startswith("hash:")
    assert bare.title == "Nothing else"
    assert bare.published is not None
    assert wrong.key.startswith("hash:")  # wrong types count as absent
    assert (wrong.title, wrong.url, wrong.content, wrong.published) == ("", None, "", None)
    assert parse_feed(JSON_FEED, {}).entries == feed.entries


def test_json_feed_with_a_bom_or_http_version_is_read() -> None:
    """A UTF-8 byte order mark, or an http:// version URL (pxlnv.com's), still reads."""
    feed = parse_feed(b"\xef\xbb\xbf" + JSON_FEED, {"content-type": "application/feed+json"})
    assert len(feed.entries) == 5
    plain = JSON_FEED.replace(b"https://jsonfeed.org/version/1.1", b"http://jsonfeed.org/version/1")
    assert parse_feed(plain, {}).entries == feed.entries


def test_json_feed_items_with_nan_ids_keep_their_own_identities() -> None:
    """NaN is no JSON, but Python reads it: every item whose id was NaN had the key
    "id:nan", and all but one were lost as repeats. Read as no id, each falls back to its
    link."""
    items = ", ".join(
        f'{{"id": {nan}, "url": "https://example.org/{n}", "title": "t{n}"}}'
        for n, nan in enumerate(["NaN", "NaN", "Infinity"])
    )
    body = f'{{"version": "https://jsonfeed.org/version/1.1", "items": [{items}]}}'.encode()
    entries = parse_feed(body, {"content-type": "application/feed+json"}).entries
    assert [e.url for e in entries] == [f"https://example.org/{n}" for n in range(3)]
    assert len({e.key for e in entries}) == 3


def _rss(items: list[tuple[str, str]]) -> bytes:
    """An RSS feed of (title, pubDate) items without guid or link."""
    body = "".join(
        f"<item><title>{t}</title>" + (f"<pubDate>{d}</pubDate>" if d else "") + "</item>"
        for t, d in items
    )
    return f"<rss version='2.0'><channel><title>T</title>{body}</channel></rss>".encode()


def test_max_entries_keeps_the_newest_and_counts_the_rest() -> None:
    """With every item dated, the newest N are kept in feed order and the cut is reported."""
    days = ["Mon, 03 Mar 2025", "Sat, 01 Mar 2025", "Tue, 04 Mar 2025", "Sun, 02 Mar 2025"]
    items = [(f"day {d[5:7]}", f"{d} 10:00:00 GMT") for d in days]
    feed = parse_feed(_rss(items), {}, max_entries=2)
    assert [e.title for e in feed.entries] == ["day 03", "day 04"]
    assert feed.dropped == 2
    assert parse_feed(_rss(items), {}).dropped == 0


def test_max_entries_without_dates_keeps_the_first() -> None:
    """When some items are undated, the feed's own order (newest first) decides."""
    items = [("a", ""), ("b", "Tue, 04 Mar 2025 10:00:00 GMT"), ("c", "")]
    feed = parse_feed(_rss(items), {}, max_entries=2)
    assert [e.title for e in feed.entries] == ["a", "b"]
    assert feed.dropped == 1


GUIDLESS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Café</title>
<item><title>Zürich talks</title><link>https://w.example/z%C3%BCrich?utm_source=x</link></item>
<item><title>Ünïcode only</title><pubDate>Tue, 04 Mar 2025 10:00:00 GMT</pubDate></item>
</channel></rss>""".encode()


RIGHT = {"content-type": "application/rss+xml; charset=utf-8"}


@pytest.mark.parametrize(
    "content_type", ["text/xml; charset=windows-1252", "application/xml; charset=koi8-r"]
)
def test_link_keys_survive_a_wrong_charset(content_type: str) -> None:
    """A guid-less item keyed by its link keeps its key when a wrong charset garbles its text."""
    right = parse_feed(GUIDLESS, RIGHT)
    wrong = parse_feed(GUIDLESS, {"content-type": content_type})
    assert wrong.entries[1].title != right.entries[1].title  # the claim really garbled text
    assert wrong.entries[0].key == right.entries[0].key == "url:https://w.example/z%C3%BCrich"


@pytest.mark.parametrize(
    "content_type", ["application/rss+xml; charset=iso-8859-1", "text/xml", "text/html", ""]
)
def test_utf8_wins_over_a_weaker_claim(content_type: str) -> None:
    """feedparser keeps UTF-8 bytes as UTF-8 under these claims, so even hash keys hold."""
    assert parse_feed(GUIDLESS, {"content-type": content_type}) == parse_feed(GUIDLESS, RIGHT)


def test_hash_keys_follow_the_decoded_title() -> None:
    """Documented limit: an item with neither guid nor link is keyed by its decoded title,
    so a wrong charset that changes the title changes the key (docs/extraction.md)."""
    right = parse_feed(GUIDLESS, RIGHT)
    wrong = parse_feed(GUIDLESS, {"content-type": "text/xml; charset=windows-1252"})
    assert right.entries[1].title == "Ünïcode only"
    assert wrong.entries[1].title == "ÃœnÃ¯code only"
    assert wrong.entries[1].key != right.entries[1].key


def test_entries_seen_before_are_left_out_of_a_poll() -> None:
    """``seen`` keys (the feed's recent entries) are skipped; the others come out exactly
    as a full parse gives them, and the cap on entries still counts every item."""
    items = "".join(
        f"<item><title>Item {i}</title><link>https://news.example/{i}</link>"
        f"<description>Text {i}</description></item>"
        for i in range(5)
    )
    body = f"<rss version='2.0'><channel><title>T</title>{items}</channel></rss>".encode()
    full = parse_feed(body, {}, max_entries=4)
    seen = {"url:https://news.example/0", "url:https://news.example/2"}
    partial = parse_feed(body, {}, max_entries=4, seen=seen)
    assert [e.key for e in full.entries] == [f"url:https://news.example/{i}" for i in range(4)]
    assert list(partial.entries) == [full.entries[1], full.entries[3]]
    assert (partial.dropped, partial.title) == (full.dropped, full.title) == (1, "T")


BROKEN_TITLES = {
    "rss": (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed\nfake-feed  ok  200'
        b"</title><item><title>Hostile\r\nBcc: x@y</title><guid>g1</guid>"
        b"</item><item><title>No\nkey\xe2\x80\xa8at all</title></item></channel></rss>"
    ),
    "feedparser": (  # RSS 1.0: feedparser's case
        b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
        b' xmlns="http://purl.org/rss/1.0/"><channel><title>Feed\nfake-feed  ok  200</title>'
        b'</channel><item rdf:about="http://e.example/1"><title>Hostile\r\n'
        b"Bcc: x@y</title><link>http://e.example/1</link></item><item><title>No\nkey\xe2\x80\xa8"
        b"at all</title></item></rdf:RDF>"
    ),
    "json": (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "Feed\\nfake-feed  ok  200",'
        b' "items": [{"id": "g1", "title": "Hostile\\r\\nBcc: x@y"},'
        b' {"title": "No\\nkey\\u2028at all"}]}'
    ),
}


@pytest.mark.parametrize("kind", BROKEN_TITLES)
def test_titles_are_one_line_and_hash_keys_stay(kind: str) -> None:
    """A line break in a feed's or an item's title (CR, LF, U+2028) becomes a space: a
    title is shown as one line, and one could otherwise forge a row of `newsmon feeds`
    or a line of an alert. An item keyed by its title keeps the key it had, which hashed
    the title with its line breaks."""
    feed = parse_feed(BROKEN_TITLES[kind], {})
    assert feed.title == "Feed fake-feed ok 200"
    hostile, keyless = feed.entries
    assert hostile.title == "Hostile Bcc: x@y"
    assert keyless.title == "No key at all"
    stamp = ""
    old = hashlib.sha256(f"No\nkey\nat all\n{stamp}".encode()).hexdigest()
    assert keyless.key == f"hash:{old}"


def test_invisible_characters_inside_words_are_dropped() -> None:
    """A soft hyphen, a zero-width space or a word joiner inside a word (Rus&shy;sian) is
    invisible, and no word break: dropped from titles and text, or the rules saw two
    words ("Rus", "sian"), as page extraction already avoids."""
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item>'
        b"<title>Rus&#173;sian em&#8203;bassy story</title><guid>g</guid>"
        b"<description>Rus&amp;shy;sian em&#8288;bassy</description></item></channel></rss>"
    )
    [entry] = parse_feed(body, {}).entries
    assert entry.title == "Russian embassy story"
    assert entry.summary == "Russian embassy"


@pytest.mark.parametrize(
    ("description", "summary"),
    [
        # markup: white space is one space, as a browser shows it; blocks are lines
        (
            "&lt;p&gt;Russia said\n   on Monday that&lt;/p&gt;&lt;p&gt;the &lt;b&gt;embassy"
            "&lt;/b&gt;\nwould reopen.&lt;br&gt;Next&lt;/p&gt;",
            "Russia said on Monday that\nthe embassy would reopen.\nNext",
        ),
        # plain text: a single line break is a wrap, a blank line parts paragraphs
        (
            "Russia said\non Monday that the\n  embassy would reopen.\n\n \nNext one.",
            "Russia said on Monday that the embassy would reopen.\nNext one.",
        ),
    ],
    ids=["markup", "plain"],
)
def test_wrapped_lines_are_joined_and_blocks_kept(description: str, summary: str) -> None:
    """A line of stored text is a paragraph, heading or list item: rules end a sentence
    there (NEAR/s), so a feed's wrapped lines must not become lines."""
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item>'
        f"<title>Story</title><guid>g</guid><description>{description}</description>"
        "</item></channel></rss>"
    ).encode()
    [entry] = parse_feed(body, {}).entries
    assert entry.summary == summary


@pytest.mark.parametrize(
    "summary",
    [
        "The Kremlin said grain exports rose sharply this autumn.",
        "The Kremlin said grain exports rose [&#8230;]",
    ],
    ids=["lede", "cut-lede"],
)
def test_a_summary_that_repeats_the_contents_start_is_not_counted_twice(summary: str) -> None:
    """The lede as the summary and the whole story, lede first, as the content: the
    summary is dropped, as one equal to the content is, so ATLEAST/2 Kremlin does not
    count one mention twice (DESIGN.md 2). A summary of its own stays."""
    content = "<p>The Kremlin said grain exports rose sharply this autumn.</p><p>Farmers wait.</p>"
    body = (
        '<?xml version="1.0"?><rss version="2.0" xmlns:content='
        '"http://purl.org/rss/1.0/modules/content/"><channel><title>T</title><item>'
        f"<title>Harvest</title><guid>g</guid><description>{summary}</description>"
        f"<content:encoded><![CDATA[{content}]]></content:encoded></item></channel></rss>"
    ).encode()
    [entry] = parse_feed(body, {}).entries
    assert entry.summary == ""
    assert entry.content.startswith("The Kremlin said")
    own = parse_feed(body.replace(b"The Kremlin said grain", b"Moscow reports grain", 1), {})
    assert own.entries[0].summary.startswith("Moscow reports grain")


RELATIVE = {
    "rss": b'<rss version="2.0"><channel><title>T</title><item><title>A</title>'
    b"<link>/news/a.html</link><description>x</description></item></channel></rss>",
    "atom": b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><entry><title>A</title>'
    b'<link href="a.html"/><summary>x</summary></entry></feed>',
    "json": b'{"version": "https://jsonfeed.org/version/1.1", "title": "T",'
    b' "items": [{"id": "", "url": "a.html", "title": "A", "content_text": "x"}]}',
}


@pytest.mark.parametrize("kind", sorted(RELATIVE))
def test_a_relative_link_resolves_against_the_feeds_url(kind: str) -> None:
    """An entry's link relative to its feed is that page on the feed's site; a
    Content-Location the publisher sent, itself maybe relative, is the base instead. Its
    identity stays what it was before links were resolved (title and date), so that no
    entry already seen comes back as new."""
    feed = "http://127.0.0.1:8801/news/feed"
    (entry,) = parse_feed(RELATIVE[kind], {}, url=feed).entries
    assert entry.url == "http://127.0.0.1:8801/news/a.html"
    (unresolved,) = parse_feed(RELATIVE[kind], {}).entries
    assert unresolved.url is None
    assert entry.key == unresolved.key
    for located in ("http://127.0.0.1:8801/news/archive/feed", "archive/feed"):
        (moved,) = parse_feed(RELATIVE[kind], {"Content-Location": located}, url=feed).entries
        expected = "/news/a.html" if kind == "rss" else "/news/archive/a.html"
        assert moved.url == f"http://127.0.0.1:8801{expected}"


@pytest.mark.parametrize("kind", sorted(RELATIVE))
def test_a_malformed_link_costs_its_entry_the_url_not_the_feed_its_poll(kind: str) -> None:
    """A link urljoin refuses (an IPv6 literal left open, a stray bracket) in one item,
    or in the Content-Location header, leaves that entry without a URL; the feed's other
    entries and the poll go on (RELIABILITY.md case 26)."""
    feed = "http://127.0.0.1:8801/news/feed"
    for bad in ("http://[2001:db8::1/story", "https://example.org]/x"):
        body = RELATIVE[kind].replace(b"a.html", bad.encode()).replace(b"/news/", b"")
        (entry,) = parse_feed(body, {}, url=feed).entries
        assert (entry.title, entry.url) == ("A", None)
        (located,) = parse_feed(RELATIVE[kind], {"Content-Location": bad}, url=feed).entries
        assert located.url == "http://127.0.0.1:8801/news/a.html"  # the feed's URL as base
