"""Boilerplate that trafilatura leaves in an article body, removed line by line.

A rule sees a body line whole: a promotion ("Follow us on Twitter", "Subscribe to our
newsletter"), a reporter's contact line, a "Read more:" link to another story, a share
bar, a credit line. Such lines name other stories, networks and people, so left in they
make rules fire on text that is not the story. Every pattern is anchored to a whole line
no longer than ``MAX_LINE`` characters, so a story paragraph that merely mentions Twitter
or a newsletter is never touched. docs/extraction.md gives the corpus figures.
"""

from __future__ import annotations

import re

MAX_LINE = 300  # a longer line is a story paragraph, whatever it contains

_I = re.IGNORECASE
_NETWORK = r"(?:twitter|facebook|instagram|youtube|linkedin|tiktok|bluesky|x\.com)"
_URL = r"(?:https?://|www\.)\S+"
_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_HANDLE = r"(?<![\w@])@\w{2,}"

# A line that is nothing but this (punctuation around it allowed).
_WHOLE = re.compile(
    r"[\W_]*(?:"
    r"comments?|tags?|share|share this(?: article| story| post)?|tweet|print|email"
    r"|(?:you (?:may|might) also (?:like|enjoy))|don'?t miss|most (?:read|popular)(?: in [\w ]+)?"
    r"|related(?: (?:stories|articles|posts|coverage|content|links))?|more stories"
    r"|recommended(?: for you)?|trending(?: now)?|tell us what you think"
    r"|advertisement|sponsored(?: content)?|[\w'’.& -]{1,40} newsletter"
    rf"|{_EMAIL}|{_HANDLE}|(?:(?:https?://)?(?:www\.)?{_NETWORK}\.com/\w+)"
    r")[\W_]*",
    _I,
)

# A line that starts like this: a pointer to other stories, a credit, a notice.
_LEAD = re.compile(
    r"[\W_]*(?:"
    r"(?:read|see|watch|listen) (?:more|also|next)\b"
    r"|(?:related|more|also read|recommended|related posts?|related stories|more from [\w ]+)\s*:"
    r"|also on \S+\.\w{2,}\b"
    r"|filed under\s*:|source\s*:\s*[\w ,.&-]{1,40}$"
    r"|\(?(?:additional )?(?:reporting|writing|editing) by\b"
    r"|this copy is for your personal, non-commercial use only"
    r")",
    _I,
)

_CREDIT = re.compile(r".{1,250}\bcontributed (?:reporting|to this (?:report|story))\b\W*", _I)

# One sentence of a promotion or a contact line: a call to act on a network, a newsletter
# or an address, or a sentence giving someone's address to reach them at.
_PROMO = re.compile(
    r"(?:please )?(?:sign up|subscribe|get|follow|click|tap|download|listen|don'?t miss)\s"
    rf".*(?:newsletters?|inbox|{_NETWORK}|podcast|{_URL}|{_HANDLE}).*"
    rf"|share (?:(?:this|it)\b.*\b(?:friends?|{_NETWORK})\b.*|on {_NETWORK}\W*)"
    r"|(?:like|enjoy(?:ed)?|love) this (?:story|article|post)\W*"
    r"|have a (?:news )?tip\W*"
    rf"|(?:email|e-mail|contact|reach|write to|send)\s.*(?:{_EMAIL}|{_HANDLE}|{_URL}|{_NETWORK}).*"
    rf"|(?=.*\b(?:reach(?:ed)?|contact(?:ed)?|e-?mail|write|follow|tips?)\b).*(?:{_EMAIL}|{_HANDLE}).*",
    _I,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")
_SHARE_SUFFIX = re.compile(r"(?<!\s)\s*click to tweet\s*$", _I)  # one try per blank run
_LIST_ITEM = re.compile(r"\s*[-–•*]\s")


def _is_boilerplate(line: str) -> bool:
    if _WHOLE.fullmatch(line) or _LEAD.match(line) or _CREDIT.fullmatch(line):
        return True
    sentences = _SENTENCE.split(line)
    return all(_PROMO.fullmatch(s.strip()) for s in sentences)


def clean_body(text: str) -> str:
    """``text`` without its boilerplate lines; story lines come back unchanged.

    The list items right under a removed "Related:" or "Read more:" line go with it: they
    are the links it introduces.
    """
    kept: list[str] = []
    dropping_list = False
    for raw in text.splitlines():
        line = _SHARE_SUFFIX.sub("", raw)  # "... sentence.Click To Tweet": keep the sentence
        short = len(line.strip()) <= MAX_LINE
        if short and dropping_list and _LIST_ITEM.match(line):
            continue
        dropping_list = False
        if line.strip() and short and _is_boilerplate(line.strip()):
            dropping_list = True
            continue
        kept.append(line)
    return "\n".join(kept).strip("\n")
