"""The parse job as the daemon sends it to a worker.

The daemon names the job here instead of importing monitor.parse, which would load
feedparser and lxml (about 6 MB) into a process that never parses: parsing runs in the
workers, whose warm-up imports the parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet

from monitor.models import ParsedFeed

MAX_ENTRIES = 200  # [monitor] max_entries' default


def parse_in_worker(
    body: bytes, headers: Mapping[str, str], url: str, max_entries: int, seen: AbstractSet[str]
) -> ParsedFeed:
    """monitor.parse.parse_feed, imported where it runs."""
    from monitor.parse import parse_feed

    return parse_feed(body, headers, url=url, max_entries=max_entries, seen=seen)
