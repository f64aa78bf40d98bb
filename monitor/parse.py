"""Feed bytes to ``Entry`` values with a stable identity, via feedparser.

feedparser is always given bytes and the response headers, never a str or a URL, so it
sniffs the encoding itself and never touches the network.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import feedparser
import lxml.etree
import lxml.html

from monitor.errors import NewsmonError
from monitor.models import Entry, ParsedFeed
from monitor.schedule import parse_ttl
from monitor.urls import normalize_url

MAX_TITLE = 1_000
MAX_SUMMARY = 20_000
MAX_CONTENT = 200_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"[ \t\r\f\v]+")


class ParseError(NewsmonError):
    """The bytes are not a feed at all."""


def clean_text(text: str, limit: int) -> str:
    """Control characters removed, runs of blanks folded, length capped."""
    text = _SPACE.sub(" ", _CONTROL.sub("", text))
    return "\n".join(line.strip() for line in text.splitlines()).strip()[:limit]


def html_to_text(markup: str, limit: int) -> str:
    """Visible text of an HTML fragment (feeds put HTML in summaries and content)."""
    if "<" not in markup and "&" not in markup:
        return clean_text(markup, limit)
    try:
        root = lxml.html.fragment_fromstring(markup, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return clean_text(markup, limit)
    for junk in root.xpath("//script|//style"):
        junk.drop_tree()
    for block in root.xpath("//p|//br|//div|//li|//h1|//h2|//h3|//h4|//tr"):
        block.tail = "\n" + (block.tail or "")
    return clean_text(root.text_content(), limit)


def _published(item: Mapping[str, Any]) -> datetime | None:
    parsed: time.struct_time | None = item.get("published_parsed") or item.get("updated_parsed")
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _entry(item: Mapping[str, Any]) -> Entry:
    title = html_to_text(str(item.get("title", "")), MAX_TITLE)
    url = normalize_url(str(item.get("link", ""))) if item.get("link") else None
    published = _published(item)
    guid = str(item.get("id", "")).strip()
    if guid:
        key = f"id:{guid[:2000]}"
    elif url:
        key = f"url:{url}"
    else:
        stamp = published.isoformat() if published else ""
        key = "hash:" + hashlib.sha256(f"{title}\n{stamp}".encode()).hexdigest()
    contents = item.get("content") or []
    content = html_to_text(str(contents[0].get("value", "")), MAX_CONTENT) if contents else ""
    summary = html_to_text(str(item.get("summary", "")), MAX_SUMMARY)
    if summary == content:
        summary = ""  # feedparser mirrors content into summary; never count text twice
    return Entry(key, url, title, summary, content, published)


def parse_feed(body: bytes, headers: Mapping[str, str]) -> ParsedFeed:
    """Entries of an RSS or Atom document, newest first as the feed lists them.

    A malformed ("bozo") feed still yields the entries feedparser recovered; only a
    document with no feed structure at all raises ParseError.
    """
    result = feedparser.parse(body, response_headers=dict(headers))
    if not result.get("version") and not result.entries:
        reason = result.get("bozo_exception")
        detail = f": {type(reason).__name__}" if reason else ""
        raise ParseError(f"not an RSS or Atom feed{detail}")
    title = html_to_text(str(result.feed.get("title", "")), MAX_TITLE) or None
    entries = tuple(_entry(item) for item in result.entries)
    return ParsedFeed(title, entries, parse_ttl(result.feed.get("ttl")))
