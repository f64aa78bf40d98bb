"""Feed bytes to ``Entry`` values with a stable identity: plain RSS 2.0 and Atom via
monitor/fastparse.py, everything else RSS or Atom via feedparser, JSON Feed via
monitor/jsonfeed.py. Every path builds entries with ``_entry``, so identity comes out the
same whichever parser read the feed.

feedparser is always given bytes and the response headers, never a str or a URL, so it
sniffs the encoding itself and never touches the network.
"""

from __future__ import annotations

import calendar
import codecs
import hashlib
import io
import re
import time
import xml.parsers.expat
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser
import lxml.etree
import lxml.html

from monitor import fastparse
from monitor.cluster import story_fingerprint
from monitor.errors import ParseError
from monitor.jsonfeed import JsonItem, looks_like_json_feed, read_json_feed
from monitor.models import Entry, ParsedFeed
from monitor.parse_job import MAX_ENTRIES
from monitor.plaintext import (
    CONTROL,
    MAX_CONTENT,
    MAX_SUMMARY,
    MAX_TITLE,
    clean_text,
    repeats_start,
    single_line,
)
from monitor.schedule import parse_ttl
from monitor.urls import joined, normalize_url, resolved

# What may come before a document's DOCTYPE and root: white space, processing
# instructions (the XML declaration), comments. Possessive, so each part is scanned once.
_PROLOG = r"(?:\s++|<\?.*?\?>|<!--.*?-->)*+"
# A DOCTYPE and its internal subset (group 1), in the prolog: feeds never need entity
# declarations, and nested ones expand exponentially (billion laughs, RELIABILITY.md
# case 22). Only there is one read: "<!DOCTYPE" in a comment or a CDATA section is text,
# and cutting it out broke the document.
_DOCTYPE = re.compile(
    rf"(?:\xef\xbb\xbf)?{_PROLOG}(<!DOCTYPE[^>\[]*(?:\[.*?\]\s*)?>)".encode(),
    re.IGNORECASE | re.DOTALL,
)


_NOT_NEWLINE = re.compile(rb"[^\r\n]")  # XML ends a line at CR, LF or both
_BLANKS = re.compile(r"\s+")
_PARAGRAPH_GAP = re.compile(r"\n[^\S\n]*\n\s*")  # a blank line, and what follows it


def html_to_text(markup: str, limit: int, *, unwrap: bool = True) -> str:
    """Visible text of an HTML fragment (feeds put HTML in summaries and content), a line
    per block: white space inside the markup is one space, as a browser shows it, so a
    feed that wraps its lines does not break sentences (NEAR/s ends one at a line break).
    Text without markup keeps its paragraphs: a blank line parts them.

    ``unwrap`` False: the text's own line breaks kept, for titles, whose hash keys read
    them as they always did (the shown title is made one line later)."""
    plain = unwrapped if unwrap else str
    if "<" not in markup and "&" not in markup:
        return clean_text(plain(markup), limit)
    try:
        root = lxml.html.fragment_fromstring(markup, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return clean_text(plain(markup), limit)
    for junk in root.xpath("//script|//style"):
        junk.drop_tree()
    for node in root.iter() if unwrap else ():
        node.text = _BLANKS.sub(" ", node.text) if node.text else node.text
        node.tail = _BLANKS.sub(" ", node.tail) if node.tail else node.tail
    for block in root.xpath("//p|//br|//div|//li|//h1|//h2|//h3|//h4|//tr"):
        block.tail = "\n" + (block.tail or "")
    return clean_text(root.text_content(), limit)


def unwrapped(text: str) -> str:
    """Plain text's paragraphs, a line each: a single line break in it is a wrap."""
    return "\n".join(_BLANKS.sub(" ", part) for part in _PARAGRAPH_GAP.split(text))


def _published(item: dict[str, Any]) -> datetime | None:
    # dict.get, not item.get: feedparser's own get maps a missing updated_parsed to
    # published_parsed with a DeprecationWarning (its issue 310)
    parsed: time.struct_time | None = dict.get(item, "published_parsed") or dict.get(
        item, "updated_parsed"
    )
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError):
        return None


@dataclass(frozen=True, slots=True)
class _Draft:
    """An entry before its text is converted: its identity is all that an entry seen
    before needs, and most of an incremental poll's entries were. ``published`` and
    ``build`` read the item when called (the fast path may raise fastparse.Unusual)."""

    key: str
    published: Callable[[], datetime | None]
    build: Callable[[str], Entry]  # given the base of relative links


def _key(
    guid: str, link: str, title: Callable[[], str], published: Callable[[], datetime | None]
) -> str:
    """An entry's identity: its id, else its normalized link, else a hash of title and
    date (the same rules for every format)."""
    guid = CONTROL.sub("", guid).strip()
    if guid:
        return f"id:{guid[:2000]}"
    url = normalize_url(link) if link else None
    if url:
        return f"url:{url}"
    date = published()
    stamp = date.isoformat() if date else ""
    return "hash:" + hashlib.sha256(f"{title()}\n{stamp}".encode()).hexdigest()


def _draft(
    guid: str,
    link: str,
    published: Callable[[], datetime | None],
    title: Callable[[], str],
    texts: Callable[[], tuple[str, str]],
) -> _Draft:
    """``published``, ``title`` and ``texts`` (summary, content) read the item when called."""

    def build(base: str) -> Entry:
        summary, content = texts()
        if repeats_start(summary, content):
            summary = ""  # never count text twice (DESIGN.md 2)
        url = resolved(base, link)
        return Entry(key, url, single_line(title()), summary, content, published())

    # the link is normalized only when needed; a hash key reads the title as it always
    # did, lines and all, so that such an entry keeps its identity across versions. The
    # identity reads the link as written: a relative one is no key (the title and date
    # are), as before links were resolved, so that no entry seen then is new now
    key = _key(guid, link, title, published)
    return _Draft(key, published, build)


def _feedparser_draft(item: dict[str, Any]) -> _Draft:
    contents = item.get("content") or []
    return _draft(
        str(item.get("id", "")),
        str(item.get("link", "")),
        lambda: _published(item),
        title=lambda: html_to_text(str(item.get("title", "")), MAX_TITLE, unwrap=False),
        texts=lambda: (
            html_to_text(str(item.get("summary", "")), MAX_SUMMARY),
            html_to_text(str(contents[0].get("value", "")), MAX_CONTENT) if contents else "",
        ),
    )


def _raw_draft(item: fastparse.RawItem) -> _Draft:
    return _draft(
        item.guid,
        item.link,
        item.published,
        title=lambda: html_to_text(item.title(), MAX_TITLE, unwrap=False),
        texts=lambda: (
            html_to_text(item.summary(), MAX_SUMMARY),
            html_to_text(item.content(), MAX_CONTENT),
        ),
    )


def _json_draft(item: JsonItem) -> _Draft:
    def texts() -> tuple[str, str]:
        content = (
            html_to_text(item.content_html, MAX_CONTENT)
            if item.content_html
            else clean_text(unwrapped(item.content_text), MAX_CONTENT)
        )
        return clean_text(unwrapped(item.summary), MAX_SUMMARY), content

    return _draft(
        item.id, item.url, lambda: item.published, lambda: clean_text(item.title, MAX_TITLE), texts
    )


def _newest(drafts: list[_Draft], limit: int) -> list[_Draft]:
    """At most ``limit`` entries, in document order: the latest by date when every entry
    has one, else the first ones (feeds list newest first)."""
    if len(drafts) <= limit:
        return drafts
    dates = [d.published() for d in drafts]
    dated = [(date, -i) for i, date in enumerate(dates) if date is not None]
    if len(dated) < len(drafts):
        return drafts[:limit]
    newest = sorted(dated, reverse=True)[:limit]  # on equal dates the earlier entry wins
    return [drafts[i] for i in sorted(-neg for _, neg in newest)]


def _without_doctype(body: bytes) -> bytes:
    """``body`` with its DOCTYPE blanked out (white space, which the prolog may hold), so
    that a fault's line and column (see ``_not_a_feed``) are those of the document as
    sent."""
    head = body[:65536]
    match = _DOCTYPE.match(head)
    if match is None:
        return body
    blank = _NOT_NEWLINE.sub(b" ", match.group(1))
    return head[: match.start(1)] + blank + head[match.end(1) :] + body[65536:]


# An HTML page, however it is labelled: its doctype or root, after any prolog and comments
_HTML_PAGE = re.compile(rf"{_PROLOG}<(?:!doctype\s+html|html)[\s>]", re.I | re.S)
# expat's "no element found": none at all, or, once the root has begun, a text cut off
_NO_ELEMENT = xml.parsers.expat.errors.codes[xml.parsers.expat.errors.XML_ERROR_NO_ELEMENTS]
_SHOWN = 40  # characters of a publisher's word (a content type, an element name) shown


def _shown(word: str) -> str:
    """A word the publisher chose, fit for a one-line message: no controls, capped."""
    word = CONTROL.sub("", word).strip()
    return word if len(word) <= _SHOWN else word[: _SHOWN - 1] + "…"


def _decoded(document: bytes, encoding: str) -> str:
    """The document as feedparser decoded it (``encoding`` is the one it settled on)."""
    try:
        return document.decode(encoding, "replace")
    except LookupError:
        return document.decode("utf-8", "replace")


def _not_a_feed(text: str, content_type: str) -> str:
    """Why a document in which feedparser found no feed is none: one line with the
    evidence (the content type, where the XML breaks, its root element), for the log and
    `newsmon feeds`. Never a library's exception name, and none of the document's own text
    but a capped element name."""
    media = _shown(content_type.split(";")[0].lower())
    labelled = f" (Content-Type: {media})" if media else ""
    start = text.lstrip("\ufeff \t\r\n")
    if not start:
        return "empty response"
    if media in ("text/html", "application/xhtml+xml"):
        return f"not a feed: the server sent {media}"
    if _HTML_PAGE.match(start[:4096]):
        return f"not a feed: the server sent an HTML page{labelled}"
    if start.startswith(("{", "[")):  # JSON, but not on the JSON Feed path
        return f"not a feed: JSON without a jsonfeed.org version at its start{labelled}"
    if not start.startswith("<"):
        return f"not a feed: the response is neither XML nor JSON{labelled}"
    return _xml_fault(text)


def _xml_fault(text: str) -> str:
    """Where XML without a feed breaks, or what its root is, as expat (feedparser's own
    XML parser) sees it: its messages are fixed phrases, never the document's text. Only
    run once a poll has failed, on text whose prolog's DOCTYPE is blanked out (RELIABILITY.md
    case 22; one past the first 64 KB, or in a wide encoding, is left to expat's own
    limit on entity expansion)."""
    parser = xml.parsers.expat.ParserCreate()
    roots: list[str] = []

    def root(name: str, attributes: object) -> None:
        roots.append(name)
        parser.StartElementHandler = None  # the root is all we need: no call per element

    parser.StartElementHandler = root
    try:
        parser.Parse(text, True)  # a str: expat reads it as UTF-8, whatever it declares
    except xml.parsers.expat.ExpatError as e:
        if e.code == _NO_ELEMENT:  # before the root: none at all; after: cut off
            if not roots:
                return "not a feed: XML without any element"
            return f"truncated XML: the document ends at line {e.lineno} with elements open"
        fault = xml.parsers.expat.ErrorString(e.code)
        return f"malformed XML at line {e.lineno}, column {e.offset + 1}: {fault}"
    return f"not a feed: no RSS or Atom in this XML (root element <{_shown(roots[0])}>)"


_Read = tuple[str | None, list[_Draft], float | None]  # title, entries, ttl in seconds


def read_fast(body: bytes, headers: Mapping[str, str]) -> _Read | None:
    """Plain RSS 2.0 or Atom through monitor/fastparse.py; None, or fastparse.Unusual from
    a field read (by an identity without guid or link, or by a draft, once read):
    feedparser's case. ``headers`` have lower-case names."""
    fast = fastparse.read(body, headers.get("content-type", ""))
    if fast is None:
        return None
    drafts = [_raw_draft(item) for item in fast.items]
    return html_to_text(fast.title, MAX_TITLE) or None, drafts, parse_ttl(fast.ttl)


def read_feedparser(body: bytes, headers: Mapping[str, str]) -> _Read:
    """Any RSS or Atom feedparser can read; ParseError when it finds no feed at all.
    ``headers`` have lower-case names."""
    # A file object, never bytes: feedparser tries bytes as a file path first, so a body
    # that spells "/etc/passwd" would be read from disk (RELIABILITY.md case 25).
    document = _without_doctype(body)
    result = feedparser.parse(io.BytesIO(document), response_headers=dict(headers))
    if not result.get("version") and not result.entries:
        text = _decoded(document, result.get("encoding") or "utf-8")
        raise ParseError(_not_a_feed(text, headers.get("content-type", "")))
    title = html_to_text(str(result.feed.get("title", "")), MAX_TITLE) or None
    drafts = [_feedparser_draft(item) for item in result.entries]
    return title, drafts, parse_ttl(result.feed.get("ttl"))


def parse_feed(
    body: bytes,
    headers: Mapping[str, str],
    *,
    url: str | None = None,
    max_entries: int = MAX_ENTRIES,
    seen: AbstractSet[str] = frozenset(),
) -> ParsedFeed:
    """Entries of an RSS, Atom or JSON Feed document, in the feed's order, at most
    ``max_entries`` of the newest (``ParsedFeed.dropped`` counts the rest). Relative
    links resolve against the document's ``url``, or the Content-Location it came with.

    Entries whose key is in ``seen`` (the feed's recent keys) are left out: their text is
    never converted, which is most of the work of a poll that finds a few new items.
    A malformed ("bozo") XML feed still yields the entries feedparser recovered; only a
    document with no feed structure at all raises ParseError.
    """
    lowered = {k.lower(): v for k, v in headers.items()}  # feedparser reads lower-case names
    # the base of relative links: a Content-Location the publisher sent (itself maybe
    # relative), else the document's own URL
    base = joined(url or "", lowered.get("content-location", "")) or url or ""
    if "content-location" in lowered:  # feedparser resolves against it: absolute, once
        lowered["content-location"] = base
    body = _narrowed(body, lowered)
    if looks_like_json_feed(body, lowered.get("content-type", "")):
        try:
            title, items = read_json_feed(body)
        except ValueError as e:
            raise ParseError(str(e)) from None
        title = clean_text(title, MAX_TITLE) if title else None
        drafts = [_json_draft(item) for item in items]
        return _parsed((title, drafts, None), max_entries, seen, base)
    try:
        fast = read_fast(body, lowered)
        if fast is not None:
            return _parsed(fast, max_entries, seen, base)
    except fastparse.Unusual:
        pass  # a field read (a new item's, or one an identity needs) is outside the case
    return _parsed(read_feedparser(body, lowered), max_entries, seen, base)


# How a document in a wide encoding starts: its byte order mark, or without one, its
# first "<" (XML 1.0 appendix F); UTF-32's first, as its little-endian ones start with
# UTF-16's
_WIDE = (
    *((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32")),
    *((b"<\0\0\0", "utf-32-le"), (b"\0\0\0<", "utf-32-be")),
    *((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")),
    *((b"<\0", "utf-16-le"), (b"\0<", "utf-16-be")),
)
_DECLARED_ENCODING = re.compile(rb"""\A(<\?xml[^>]*?\sencoding\s*=\s*)(["'])[^"']*\2""")
_CHARSET = re.compile(r";\s*charset\s*=[^;]*", re.IGNORECASE)


def _narrowed(body: bytes, headers: dict[str, str]) -> bytes:
    """A document in UTF-16 or UTF-32, told by its first bytes as XML tells it, as UTF-8,
    its declaration and ``headers``' Content-Type saying so. What reads the bytes before
    a parser does (the JSON Feed sniff, the reasons a document is no feed) reads them as
    UTF-8, so a JSON Feed in UTF-16 was "no feed" and an HTML page "neither XML nor
    JSON"; and feedparser reads `text/xml` with no charset as US-ASCII (RFC 3023, which
    RFC 7303 replaced), so such a feed without a byte order mark failed."""
    for mark, codec in _WIDE:
        if body.startswith(mark):
            try:
                text = body.decode(codec)  # "utf-16" and "utf-32" read the mark and drop it
            except UnicodeDecodeError as e:
                raise ParseError(f"malformed {codec.upper()} at byte {e.start}") from None
            if "content-type" in headers:
                headers["content-type"] = _CHARSET.sub("", headers["content-type"])
            return _DECLARED_ENCODING.sub(rb"\1\2utf-8\2", text.encode("utf-8"), count=1)
    return body


def _parsed(read: _Read, max_entries: int, seen: AbstractSet[str], base: str) -> ParsedFeed:
    title, drafts, ttl = read
    kept = _newest(drafts, max_entries)
    entries = tuple(d.build(base) for d in kept if d.key not in seen)
    prints = tuple(story_fingerprint(e.title, e.summary, e.content) for e in entries)
    feed_title = single_line(title) if title else None  # one line, as the entries' titles
    return ParsedFeed(feed_title or None, entries, ttl, len(drafts) - len(kept), prints)
