"""The data that crosses stage boundaries: frozen dataclasses, no I/O.

Flow: ``Fetched`` (fetch) -> ``ParsedFeed`` of ``Entry`` (parse) -> ``Extracted`` (extract)
-> ``Document`` -> ``RuleMatch`` (rules) -> ``Story`` (pipeline, to the store) ->
``Delivery`` + ``Alert`` (store, to the notifiers) -> ``SendResult`` (notifiers).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response read whole within its size cap. ``status`` 304 has an empty body;
    header names are lower-case."""

    url: str
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the store remembers about a feed between polls."""

    id: int
    url: str
    title: str | None
    etag: str | None
    last_modified: str | None
    polled: bool  # has had at least one successful poll
    errors: int  # consecutive failed polls


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
    title: str | None
    entries: tuple[Entry, ...]
    ttl: float | None = None  # RSS <ttl>, in seconds


class BodyStatus(enum.StrEnum):
    """Where an entry's body came from, or why the page gave none."""

    EXTRACTED = "extracted"
    FEED_CONTENT = "feed_content"  # the page was not used; the feed's full content was
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
    """An article page reduced to its story text."""

    body: str
    status: BodyStatus
    detail: str = ""  # why, when status is not EXTRACTED


@dataclass(frozen=True, slots=True)
class Document:
    """The fields rules look at. No text is counted twice."""

    title: str
    summary: str
    body: str


@dataclass(frozen=True, slots=True)
class MatchedTerm:
    """One occurrence that made a rule match: the words as found, where they were."""

    text: str
    field: str  # "title" | "summary" | "body"
    start: int  # character offsets within that field
    end: int


@dataclass(frozen=True, slots=True)
class RuleMatch:
    rule: str
    terms: tuple[MatchedTerm, ...]
    snippet: str

    @property
    def matched_words(self) -> tuple[str, ...]:
        """Distinct matched words in order of first appearance, for alerts."""
        return tuple(dict.fromkeys(t.text for t in self.terms))


@dataclass(frozen=True, slots=True)
class Story:
    """A new entry ready to be stored, with what it matched."""

    entry: Entry
    story_key: str  # one per story: the canonical URL until clustering exists
    body: str
    body_status: BodyStatus
    matches: tuple[RuleMatch, ...]
    alertable: bool  # False on a first poll for old or undated entries


@dataclass(frozen=True, slots=True)
class PollResult:
    """A feed poll's outcome: a value, never an exception."""

    feed_url: str
    outcome: str  # "ok" | "not_modified" | "error"
    new_entries: int = 0
    hits: int = 0
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


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"  # transient: try again later
    PERMANENT = "permanent"  # the destination refused for good


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    detail: str  # one line for logs and `newsmon deliveries`; never holds a secret
    retry_after: float | None = None  # seconds the destination asked us to wait
