"""Text helpers shared by the channels: cleaning untrusted text, clean truncation, links.

Everything here is pure. Feed text is untrusted (RELIABILITY.md section E): it may carry
control characters, bidi overrides, zero-width characters, lone surrogates and markup.
Each channel escapes for its own syntax; these helpers only make text safe to measure,
cut and put on one line.
"""

from __future__ import annotations

import re
import urllib.parse
from datetime import UTC, datetime

import idna

ELLIPSIS = "…"

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: none belongs in
# a header value or a one-line field (CVE-2024-6923: a CR LF in a header value).
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Bidi embeddings, overrides and isolates, and zero-width characters: they make a label
# read differently from what it is (RELIABILITY.md case 42). U+200D (ZWJ) is kept out of
# labels too; emoji sequences lose their joins, which is harmless.
_DECEPTIVE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_SPACES = re.compile(r"\s+")
# How far back from the limit a cut may move to end on a word boundary.
_WORD_SLACK = 40


def scrub(text: str) -> str:
    """Replace lone surrogates with U+FFFD and drop bidi and zero-width characters.

    Keeps newlines and tabs; see ``one_line`` for fields that must stay on one line.
    """
    # A lone surrogate survives "surrogatepass" encoding and is replaced on decoding.
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _DECEPTIVE.sub("", text)


def one_line(text: str) -> str:
    """``scrub`` plus every control, line break and run of white space as one space."""
    return _SPACES.sub(" ", _CONTROLS.sub(" ", scrub(text))).strip()


def capped_line(text: str, limit: int) -> str:
    """``one_line``, then ``truncate`` to ``limit``: a feed's or server's text as a field."""
    return truncate(one_line(text), limit)


def truncate(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else a cut ending in an ellipsis.

    The cut falls on a code point (never inside a surrogate pair: Python strings hold code
    points) and, when a word boundary is near, between words.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    space = cut.rfind(" ", max(0, len(cut) - _WORD_SLACK))
    if space > 0:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def escape_capped(text: str, limit: int, escape: dict[str, str]) -> str:
    """Escape ``text`` with the per-character table ``escape`` and cap the result at
    ``limit`` characters, cutting the raw text so that no escape sequence is split.

    Channels use this where the limit applies to the escaped form (Slack counts the
    characters of ``&lt;``, not of ``<``).
    """
    escaped = "".join(escape.get(c, c) for c in text)
    if len(escaped) <= limit:
        return escaped
    # Keep raw characters while their escaped form plus an ellipsis still fits.
    budget = limit - len(ELLIPSIS)
    kept: list[str] = []
    used = 0
    for c in text:
        piece = escape.get(c, c)
        if used + len(piece) > budget:
            break
        kept.append(piece)
        used += len(piece)
    raw_cut = len(kept)
    # Prefer ending between words when a space is near the cut.
    for back in range(min(_WORD_SLACK, raw_cut)):
        if text[raw_cut - back - 1] == " ":
            kept = kept[: raw_cut - back - 1]
            break
    return "".join(kept).rstrip() + ELLIPSIS


def http_url(url: str | None) -> str | None:
    """``url`` when it is an absolute http(s) URL with a host, else None.

    Links in alerts come from feeds; ``javascript:``, ``data:`` and relative URLs are
    never turned into links.
    """
    if not url:
        return None
    url = url.strip()
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if _CONTROLS.search(url):
        return None
    return url


def display_host(url: str) -> str:
    """The URL's host as ASCII (punycode for an IDN), so a homograph shows what it is."""
    try:
        host = urllib.parse.urlsplit(url).hostname or ""
    except ValueError:
        return ""
    try:
        # UTS 46 without the transitional mappings, as browsers resolve a link: Python's
        # own "idna" codec is IDNA 2003, which shows faß.de as fass.de, another domain
        return idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        # Not valid IDNA (for example a label too long): show the escaped code points.
        return host.encode("ascii", "backslashreplace").decode("ascii")


def format_published(published: datetime | None) -> str:
    """``2025-02-27 09:58 UTC``, or ``unknown`` when the feed gave no date."""
    if published is None:
        return "unknown"
    if published.tzinfo is not None:
        published = published.astimezone(UTC)
    return published.strftime("%Y-%m-%d %H:%M UTC")


def split_matches(text: str, words: tuple[str, ...]) -> list[tuple[str, bool]]:
    """Split ``text`` into runs, each flagged True when it is one of the matched
    ``words`` (whole words, as found: a match is recorded in the case it was found in,
    and 'WHO' matched case-sensitively must not light up every "who"), for channels that
    highlight them."""
    # only those in the text: a hit's list may be long, a snippet is short
    terms = sorted({w for w in words if w.strip() and w in text}, key=len, reverse=True)
    if not terms:
        return [(text, False)] if text else []
    # \b only where the term itself starts or ends with a word character, so "U.S."
    # still matches before a space.
    alternatives = []
    for term in terms:
        pattern = re.escape(term)
        if term[0].isalnum() or term[0] == "_":
            pattern = r"\b" + pattern
        if term[-1].isalnum() or term[-1] == "_":
            pattern = pattern + r"\b"
        alternatives.append(pattern)
    runs: list[tuple[str, bool]] = []
    at = 0
    for m in re.finditer("|".join(alternatives), text):
        if m.start() > at:
            runs.append((text[at : m.start()], False))
        runs.append((m.group(), True))
        at = m.end()
    if at < len(text):
        runs.append((text[at:], False))
    return runs
