"""Text as newsmon stores it: control characters out, blanks folded, each field capped.

Its own module, free of lxml and feedparser, because the daemon needs it too (extracted
pages' titles and bodies) while the parsers themselves run in the workers.
"""

from __future__ import annotations

import re

MAX_TITLE = 1_000
MAX_SUMMARY = 20_000
MAX_CONTENT = 200_000
# C0 and C1 controls (not tab or newlines), and lone UTF-16 surrogates, which JSON can
# carry and SQLite's UTF-8 encoder refuses
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_SPACE = re.compile(r"[ \t\r\f\v]+")
# invisible inside a word, and no break in it: a soft hyphen (Rus&shy;sian), a zero-width
# space, a word joiner, a byte-order mark; left in, each split the word for the rules.
# Page extraction drops them already. (Zero-width joiners stay: scripts and emoji use them.)
_INVISIBLE = re.compile("[\u00ad\u200b\u2060\ufeff]")


def clean_text(text: str, limit: int) -> str:
    """Control and invisible characters removed, runs of blanks folded, length capped."""
    text = _SPACE.sub(" ", _INVISIBLE.sub("", CONTROL.sub("", text)))
    return "\n".join(line.strip() for line in text.splitlines()).strip()[:limit]


def single_line(text: str) -> str:
    """A cleaned text's lines joined by spaces: for titles and names, which a feed may
    break over lines but which are shown as one (a line break in a feed's title forged a
    row of `newsmon feeds`, one in an item's a line of the console's alerts)."""
    return " ".join(filter(None, text.split("\n")))


def repeats_start(summary: str, text: str) -> bool:
    """Whether ``summary`` only repeats the start of ``text``: feedparser mirrors the
    content into the summary, and many feeds give the lede as the summary, cut or not
    ("... […]"), and then the whole story, lede first, as the content or on the page."""
    lede = summary.rstrip(" .…[]").rstrip()
    return summary == text or (bool(lede) and text.startswith(lede))


# A page title's site name: "Headline | Site", "Headline - Site.com"
_SITE_SUFFIX = re.compile(r"\s+[|\-–—]\s+[^|\-–—]+$")


def without_headline(body: str, *titles: str | None) -> str:
    """``body`` (or a summary) without a first line that repeats one of ``titles``.

    One page in eight starts its text with the headline (docs/extraction.md), and feeds
    repeat the title as the description or as the content's first paragraph; the title
    field already holds it: left in, its words counted twice (``ATLEAST/2`` fired on a
    headline's one mention) and ``body:`` rules matched the headline alone.
    """
    first, _, rest = body.partition("\n")
    line = _words(first)
    for title in filter(None, titles):
        if line and line in (_words(title), _words(_SITE_SUFFIX.sub("", title))):
            return rest.lstrip("\n")
    return body


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))
