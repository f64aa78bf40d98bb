"""Text as newsmon stores it: control characters out, blanks folded, each field capped;
and where a sentence of it ends, for matching and for a headline repeated in the lede.

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


# Periods after these words rarely end a sentence in news copy ("Mr. Lavrov said").
ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "rev", "vs", "etc"),
        *("gen", "maj", "brig", "col", "lt", "sgt", "capt", "cmdr", "adm", "amb"),
        *("gov", "sen", "rep"),
        *("inc", "ltd", "co", "corp"),
        *("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"),
    }
)


def ends_sentence(stop: str, previous: str) -> bool:
    """An abbreviation or an initial ("John F. Kennedy") before a period ends no sentence;
    a number does ("invoked Article 5. Russia denied it")."""
    initial = len(previous) == 1 and previous.isalpha()
    return stop != "." or not (initial or previous in ABBREVIATIONS)


# A page title's site name: "Headline | Site", "Headline - Site.com"
_SITE_SUFFIX = re.compile(r"\s+[|\-–—]\s+[^|\-–—]+$")
# A sentence's end: its stop, any closing quotes or brackets, then a space
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s+")


def without_headline(body: str, *titles: str | None) -> str:
    """``body`` (or a summary) without a first line, or a first sentence, that repeats
    one of ``titles``.

    One page in eight starts its text with the headline (docs/extraction.md), and feeds
    repeat the title as the description or as the content's first paragraph, or open
    the lede with it ("Russia expels envoy. The ministry said..."); the title field
    already holds it: left in, its words counted twice (``ATLEAST/2`` fired on a
    headline's one mention) and ``body:`` rules matched the headline alone. A first
    sentence that only begins with the title's words keeps them.
    """
    first, _, rest = body.partition("\n")
    line = _words(first)
    for title in filter(None, titles):
        # the title, and the title without a site name, once each
        for said in dict.fromkeys((_words(title), _words(_SITE_SUFFIX.sub("", title)))):
            if line and line == said:
                return rest.lstrip("\n")
            # most texts fail this prefix test: only they pay for finding sentences
            if said and line.startswith(said + " "):
                end = _after_sentence(first, said)
                if end:
                    return body[end:]
    return body


def _after_sentence(line: str, words: str) -> int:
    """Where ``line`` goes on after the sentence that opens it, when that sentence says
    ``words`` (folded as ``_words`` folds), else 0. A period after an abbreviation or an
    initial ("U.S." is the initial S's) ends no sentence, as for NEAR/s: the next stop
    is tried, until more than ``words`` is said.
    Only stops within twice the words' length are looked for: the sentence that says
    them is about as long, and a lede's first sentence is often far longer."""
    for stop in _SENTENCE_END.finditer(line, 0, 2 * len(words) + 8):
        said = _words(line[: stop.start()])
        if said == words:  # unless the period ends "U.S." or "St.", as matching reads it
            return stop.end() if ends_sentence(stop.group()[0], said.rpartition(" ")[2]) else 0
        if len(said) >= len(words):
            return 0
    return 0


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))
