"""Subscriptions exported as OPML (every feed reader has the button), turned into
``[[feeds]]`` tables to paste into the watchlist.

Nothing is written for the user: the watchlist is theirs, hand-edited, and the output is
reviewed before it goes in. A reader's folders become the feeds' tags, which rules can
be scoped to. Feeds the watchlist already has are left out, and names are made unique,
so that what is pasted passes ``newsmon check``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html.entities import name2codepoint
from typing import Any

from monitor.errors import ConfigError
from monitor.urls import normalize_url


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One subscription as the export has it: its URL, its title, its folders."""

    url: str
    name: str | None
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OpmlImport:
    """What ``plan_import`` found to paste, and what it left out."""

    feeds: list[OpmlFeed]
    watched: int  # already in the watchlist, left out
    skipped: list[str]  # outlines whose xmlUrl is no http(s) URL
    repeated: list[str]  # outlines of a feed listed before, left out


def read_opml(data: bytes, source: str) -> list[OpmlFeed]:
    """Every outline with an ``xmlUrl``, in document order, tagged with its folders."""
    from lxml import etree  # here: `newsmon run` loads this module, and not lxml

    # no DTD, no entities, no network: an exported file from elsewhere is untrusted input
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(_HTML_ENTITY.sub(_as_reference, data), parser)
    except etree.XMLSyntaxError as e:
        raise ConfigError("", f"{source}: not an OPML file: {e}") from None
    body = root.find("body") if root.tag == "opml" else None
    if body is None:
        raise ConfigError("", f"{source}: not an OPML file: no <opml><body>")
    return list(_outlines(body, ()))


# HTML's named entities (&eacute;, &nbsp;), which readers write into titles; XML knows only
# its own five, and one undefined entity failed the whole file
_HTML_ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_XML_ENTITIES = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})


def _as_reference(match: re.Match[bytes]) -> bytes:
    """An HTML entity as the character reference XML reads; anything else unchanged."""
    name = match[1]
    point = None if name in _XML_ENTITIES else name2codepoint.get(name.decode("ascii"))
    return match[0] if point is None else b"&#%d;" % point


def _outlines(parent: Any, folders: tuple[str, ...]) -> Iterator[OpmlFeed]:
    for outline in parent.iterfind("outline"):
        label = (outline.get("title") or outline.get("text") or "").strip() or None
        url = (outline.get("xmlUrl") or "").strip()
        if url:
            yield OpmlFeed(_without_feed_scheme(url), label, folders)
        yield from _outlines(outline, (*folders, label) if label and not url else folders)


def plan_import(
    feeds: Iterable[OpmlFeed], watched_urls: Iterable[str], names: Iterable[str]
) -> OpmlImport:
    """What to paste: new http(s) feeds once each, under names no other feed has and
    that are no tag (``names``: the watchlist's feed names and tags): a rule scoped to a
    folder's tag would otherwise find it is a feed's name too, which check refuses."""
    feeds = list(feeds)
    watched = {normalize_url(u) or u for u in watched_urls}
    taken = set(names).union(*(feed.tags for feed in feeds))
    seen: set[str] = set()
    out: list[OpmlFeed] = []
    skipped, repeated = [], []
    for feed in feeds:
        key = normalize_url(feed.url)
        if key is None:
            skipped.append(feed.url)
        elif key in seen:
            repeated.append(feed.url)
        else:
            seen.add(key)
            if key not in watched:
                out.append(OpmlFeed(feed.url, _unique(feed.name, taken), feed.tags))
    return OpmlImport(out, len(seen & watched), skipped, repeated)


def _without_feed_scheme(url: str) -> str:
    """``feed://host/x`` as ``http://host/x``, ``feed:https://...`` as ``https://...``: the
    feed: scheme some readers export only says "a feed" (and asked a browser to hand the
    link to a reader)."""
    scheme, colon, rest = url.partition(":")
    if not colon or scheme.lower() != "feed":
        return url
    return rest if rest.lower().startswith(("http://", "https://")) else f"http:{rest}"


def _unique(name: str | None, taken: set[str]) -> str | None:
    if name is None:
        return None
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name} ({n})"
    taken.add(candidate)
    return candidate


def render_feeds(feeds: Iterable[OpmlFeed]) -> str:
    """TOML tables; JSON's string escapes are TOML's basic-string escapes."""
    tables = []
    for feed in feeds:
        lines = ["[[feeds]]", f"url = {_string(feed.url)}"]
        if feed.name is not None:
            lines.append(f"name = {_string(feed.name)}")
        if feed.tags:
            lines.append(f"tags = [{', '.join(map(_string, feed.tags))}]")
        tables.append("\n".join(lines))
    return "\n\n".join(tables) + ("\n" if tables else "")


def _string(text: str) -> str:
    # JSON leaves DEL as it is, which TOML forbids unescaped in a string (TOML 1.0, Strings)
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
