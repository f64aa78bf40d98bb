"""The data that crosses stage boundaries: frozen dataclasses, no I/O.

Flow: ``Fetched`` (fetch) -> ``ParsedFeed`` of ``Entry`` (parse) -> ``Extracted`` (extract)
-> ``Document`` -> ``RuleMatch`` (rules) -> ``Story`` (pipeline, to the store) ->
``Delivery`` + ``Alert`` (store, to the notifiers) -> ``SendResult`` (notifiers).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice

from monitor.plaintext import repeats_start, without_headline

MAX_MATCHED_WORDS = 100  # distinct words a hit lists


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response read whole within its size cap. ``status`` 304 has an empty body;
    header names are lower-case."""

    url: str  # the final URL, after redirects
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    moved: bool = False  # reached through permanent redirects (301/308) only

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


@dataclass(frozen=True, slots=True)
class Location:
    """Where a feed is fetched from, and a permanent redirect seen but not yet adopted."""

    fetch_url: str
    moved_to: str | None = None
    confirmations: int = 0


@dataclass(frozen=True, slots=True)
class Cursor:
    """What a successful poll leaves for the next one."""

    status: int
    etag: str | None
    last_modified: str | None
    url: str  # the URL that gave these validators: they are sent back to it only
    location: Location


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the store remembers about a feed between polls."""

    id: int
    url: str  # as the watchlist names it: the feed's identity
    etag: str | None
    last_modified: str | None
    polled: bool  # has had at least one successful poll
    errors: int  # consecutive failed polls
    location: Location
    cursor_url: str | None = None
    title: str | None = None  # the feed's own, once a poll has read it


@dataclass(frozen=True, slots=True)
class Entry:
    """One feed item, with a ``key`` that stays the same across polls and restarts."""

    key: str
    url: str | None  # normalized link; None when the item has no usable http(s) link
    title: str
    summary: str
    content: str  # the feed's own full text (content:encoded), as plain text
    published: datetime | None  # timezone-aware UTC


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A feed's entries, at most ``max_entries`` of its newest; ``dropped`` says how many
    older ones the cap cut (worth a log line: the feed outruns the poll interval)."""

    title: str | None
    entries: tuple[Entry, ...]
    ttl: float | None = None  # RSS <ttl>, in seconds
    dropped: int = 0  # entries past max_entries, not handled this poll
    # one per entry: the story fingerprint of its own text (monitor.cluster), made in the
    # parse worker so that the event loop does not spend a feeds-only poll on it
    fingerprints: tuple[Fingerprint | None, ...] = ()


class BodyStatus(enum.StrEnum):
    """Where an entry's body came from: the page (EXTRACTED), or why the page gave none,
    in which case the body is the feed's own full content, if it has any."""

    EXTRACTED = "extracted"
    DISABLED = "disabled"  # fetch_articles = false
    NO_LINK = "no_link"
    FETCH_FAILED = "fetch_failed"
    NOT_HTML = "not_html"
    EMPTY = "empty"  # extraction found no article text
    TIMEOUT = "timeout"  # extraction overran its budget
    BLOCKED = "blocked"  # the address guard refused the link
    SKIPPED = "skipped"  # a first poll's old entry: recorded as seen, its page not fetched


@dataclass(frozen=True, slots=True)
class Extracted:
    """An article page reduced to its story text, with what the page says about itself.

    The metadata fields are None when the page does not give them (or extraction failed).
    """

    body: str
    status: BodyStatus
    detail: str = ""  # why, when status is not EXTRACTED
    canonical_url: str | None = None  # <link rel="canonical">, absolute and normalized
    title: str | None = None
    published: date | None = None  # the page's publication day (htmldate gives no time)
    site_name: str | None = None
    language: str | None = None  # lower-case BCP 47 tag from <html lang> and the like


@dataclass(frozen=True, slots=True)
class Document:
    """The fields rules look at. No text is counted twice."""

    title: str
    summary: str
    body: str

    @classmethod
    def of_story(cls, title: str, summary: str, body: str) -> Document:
        """A story's fields with no text in two of them (DESIGN.md 2): a summary or body
        that starts with the title loses that line or sentence, and a summary that only
        repeats the start of the body (a feed's lede, first again on the page) is left
        out. The daemon and a backtest match the same text."""
        summary, body = without_headline(summary, title), without_headline(body, title)
        return cls(title, "" if repeats_start(summary, body) else summary, body)


@dataclass(frozen=True, slots=True)
class MatchedTerm:
    """One occurrence that made a rule match: the words as found, where they were."""

    text: str
    field: str  # "title" | "summary" | "body"
    start: int  # character offsets within that field
    end: int


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class RuleMatch:
    """A rule that matched, and why. ``lazy_snippet`` is the snippet, or a function of
    the terms that makes it on first read of ``snippet``: the rules engine passes one
    function for all of a document's matches, since most matches are never shown (a third
    of the matching time went to snippets, issue 4). Equality, hash and repr see the
    snippet itself."""

    rule: str
    terms: tuple[MatchedTerm, ...]
    lazy_snippet: str | Callable[[tuple[MatchedTerm, ...]], str]

    @property
    def snippet(self) -> str:
        made = self.lazy_snippet
        if not isinstance(made, str):
            made = made(self.terms)
            object.__setattr__(self, "lazy_snippet", made)  # made once, frozen as before
        return made

    @property
    def matched_words(self) -> tuple[str, ...]:
        """Distinct matched words in order of first appearance, for alerts: the first
        ``MAX_MATCHED_WORDS`` (a prefix rule on a page of 30,000 distinct words stored
        437 KB of them with each hit, and sent them in every alert)."""
        return tuple(islice(dict.fromkeys(t.text for t in self.terms), MAX_MATCHED_WORDS))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuleMatch):
            return NotImplemented
        return (self.rule, self.terms, self.snippet) == (other.rule, other.terms, other.snippet)

    def __hash__(self) -> int:
        return hash((self.rule, self.terms, self.snippet))

    def __repr__(self) -> str:
        return f"RuleMatch(rule={self.rule!r}, terms={self.terms!r}, snippet={self.snippet!r})"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A story text's MinHash signature (``monitor.cluster``) and its shingle count."""

    shingles: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class ClusterPolicy:
    """When a new entry joins an earlier one's story: its text overlaps the earlier text by
    at least ``threshold`` (containment, 0..1) and the earlier one was seen within
    ``window`` seconds."""

    window: float
    threshold: float


@dataclass(frozen=True, slots=True)
class Story:
    """A new entry ready to be stored, with what it matched."""

    entry: Entry
    story_key: str  # the entry's own: its canonical URL; the store may file it under a cluster
    body: str
    body_status: BodyStatus
    matches: tuple[RuleMatch, ...]
    alertable: bool  # False on a first poll for old or undated entries
    # None: too short to cluster; the store then keeps ``story_key`` as the story
    fingerprint: Fingerprint | None = None


@dataclass(frozen=True, slots=True)
class PollResult:
    """A feed poll's outcome: a value, never an exception."""

    feed_url: str
    outcome: str  # "ok" | "not_modified" | "error"
    new_entries: int = 0
    hits: int = 0
    dropped: int = 0  # entries past max_entries, not handled
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AlsoSeen:
    url: str | None
    feed: str
    title: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """An outbox row: one hit for one notifier."""

    id: str
    hit_id: str
    notifier: str
    attempts: int
    created_at: float


@dataclass(frozen=True, slots=True)
class DigestRow:
    """An outbox row that bundles several of one notifier's deliveries in one message."""

    id: str
    notifier: str
    attempts: int
    created_at: float


@dataclass(frozen=True, slots=True)
class Alert:
    """Everything a notifier renders; built from the store at each attempt."""

    delivery_id: str
    hit_id: str
    rule: str
    title: str
    url: str | None
    feed: str
    published: datetime | None
    matched: tuple[str, ...]
    snippet: str
    also: tuple[AlsoSeen, ...] = ()


@dataclass(frozen=True, slots=True)
class Digest:
    """Several hits for one destination in one message (``digest`` on a notifier).

    ``delivery_id`` is the digest's own, stable across retries; each alert keeps its own
    hit id, and its ``delivery_id`` is the member delivery's.
    """

    delivery_id: str
    notifier: str
    alerts: tuple[Alert, ...]
    # A storm summary (a rule past its max_per_hour): the rule, and how many hits the
    # digest holds; ``alerts`` then holds only the first few.
    storm_rule: str | None = None
    storm_count: int = 0

    @property
    def total(self) -> int:
        """How many hits the message stands for (a storm's alerts are its first few)."""
        return self.storm_count if self.storm_rule is not None else len(self.alerts)

    @property
    def more(self) -> int:
        """Hits counted but not listed: the rest of a storm."""
        return self.total - len(self.alerts)


@dataclass(frozen=True, slots=True)
class Notice:
    """An operational message (a feed gone, a destination paused...) for one destination
    of ``[monitor] notices``; ``id`` is stable per kind, subject, episode and destination."""

    id: str
    notifier: str
    kind: str
    subject: str
    text: str
    attempts: int
    created_at: float


@dataclass(frozen=True, slots=True)
class LanePolicy:
    """How the outbox treats one destination (the delivery keys of a notifier table)."""

    max_age: float = 86400.0  # retried past this since the hit: expired
    rate: float | None = None  # messages per second; None: unlimited
    burst: int = 3  # messages sent back to back before ``rate`` applies
    digest: float | None = None  # seconds of hits batched into one message; None: off
    pause_after: int = 5  # permanent failures in a row (no success) that pause it


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"  # transient: try again later
    PERMANENT = "permanent"  # the destination refused for good


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    detail: str  # one line for logs and `newsmon deliveries`; never holds a secret
    retry_after: float | None = None  # seconds the destination asked us to wait
