"""Following a feed that moved: adopt a permanent redirect only once it is confirmed.

A single 301 may be a publisher's mistake or an attacker's (RELIABILITY.md: fastladder
#575), so the stored URL changes only after the same permanent redirect on several polls in
a row, and never from https to http.
"""

from __future__ import annotations

from monitor.models import Location

CONFIRMATIONS = 3


def follow(current: Location, final_url: str, moved: bool) -> Location:
    """The location after a poll of ``current.fetch_url`` that ended at ``final_url``;
    ``moved`` says every redirect on the way was permanent."""
    requested = current.fetch_url
    downgrade = requested.startswith("https:") and final_url.startswith("http:")
    if not moved or final_url == requested or downgrade:
        return Location(requested)
    seen = current.confirmations + 1 if current.moved_to == final_url else 1
    if seen >= CONFIRMATIONS:
        return Location(final_url)
    return Location(requested, final_url, seen)
