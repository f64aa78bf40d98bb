"""One exception tree: every error newsmon raises on purpose derives from NewsmonError.

Foreign exceptions are wrapped at stage boundaries (``raise ... from e``) so that callers
catch one family and messages say what newsmon was doing, never a secret.
"""

from __future__ import annotations

from collections.abc import Mapping


class NewsmonError(Exception):
    """Root of newsmon's own errors."""


class ConfigError(NewsmonError):
    """The watchlist is invalid; ``path`` is the dotted key path of the offending value."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class EmptyWatchlist(ConfigError):
    """The watchlist file holds nothing: an error for what would run it, a blank page
    for ``import-opml``, whose output a shell may be writing into that very file."""


class QueryError(NewsmonError):
    """A rule query does not parse; ``column`` is 1-based within the query text."""

    def __init__(self, column: int, message: str) -> None:
        self.column = column
        self.message = message
        super().__init__(f"column {column}: {message}")


class ParseError(NewsmonError):
    """The bytes are not a feed at all; ``status``: the HTTP status they came with, for
    `newsmon feeds` (a feed that answers 200 with an HTML page)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FetchError(NewsmonError):
    """A fetch failed; ``reason`` is a short machine-friendly code for logs and status.

    ``headers`` (lower-case names) are the failed response's, when there was one: a 429 or
    503 carries the Retry-After that schedules the next poll.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.reason = reason
        self.status = status
        self.headers: Mapping[str, str] = headers or {}
        super().__init__(message)


class StoreError(NewsmonError):
    """The database is unusable (corrupt, unwritable, from a newer newsmon).

    ``transient``: the cause may clear up without a new newsmon or a new database (a full
    disk, a read-only or missing state directory), so a daemon may wait for it.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(message)


class RuleCompileError(NewsmonError):
    """A rule or an entity form does not compile.

    ``rule`` names the rule, or is None when the fault is in an entity's form list;
    ``entity`` names the entity involved (an unknown ``@name`` or the faulty list);
    ``form_index`` indexes that list; ``error`` carries the column and the message.
    """

    def __init__(
        self,
        error: QueryError,
        *,
        rule: str | None = None,
        entity: str | None = None,
        form_index: int | None = None,
    ) -> None:
        self.rule = rule
        self.entity = entity
        self.form_index = form_index
        self.error = error
        if rule is not None:
            where = f"rule {rule!r}"
        elif form_index is not None:
            where = f"entity {entity!r} form {form_index}"
        else:
            where = f"entity {entity!r}"
        super().__init__(f"{where}: {error}")
