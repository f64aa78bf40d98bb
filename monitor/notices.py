"""Operational notices: what an operator must hear about, sent to ``[monitor] notices``.

A feed gone (410), failing for a day or silent far beyond its rhythm, a destination
paused, alerts expiring undelivered.
Each is a row per destination in the outbox's ``notices`` table, so it is retried like an
alert and survives a restart; its id is fixed by (kind, subject, episode), so raising it
at every poll sends it once. A destination is never told about itself: a paused one
would only queue a notice about its own pause (no loop).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from monitor.durations import span
from monitor.log import log_event
from monitor.store import SilentFeed, Store

log = logging.getLogger("newsmon.notices")

FEED_GONE = "feed_gone"
FEED_FAILING = "feed_failing"
FEED_SILENT = "feed_silent"
DESTINATION_PAUSED = "destination_paused"
DELIVERIES_EXPIRED = "deliveries_expired"
FAILING_FOR = 86400.0  # a failure streak this long raises FEED_FAILING
EXPIRED_EPISODE = 3600.0  # one DELIVERIES_EXPIRED notice per destination per hour at most
# A feed is silent when it still answers but has found nothing new for SILENT_FACTOR times
# its rhythm (the typical time between polls that find something) and SILENT_FLOOR at
# least, once SILENT_BEATS such polls have set the rhythm: a wire that posts every few
# minutes is silent after 6 hours, a weekly column after ten weeks.
SILENT_BEATS = 8
SILENT_FACTOR = 10.0
SILENT_FLOOR = 6 * 3600.0


async def raise_notice(
    store: Store,
    targets: Iterable[str],
    kind: str,
    subject: str,
    episode: float,
    text: str,
    now: float,
    *,
    exclude: str | None = None,
) -> bool:
    """Queue the notice for each target but ``exclude``; True when it is new."""
    to = [t for t in targets if t != exclude]
    if not to or not await store.add_notice(kind, subject, f"{episode:.6f}", text, to, now):
        return False
    log_event(log, logging.INFO, "notice_raised", kind=kind, subject=subject, to=",".join(to))
    return True


async def feed_failed(
    store: Store,
    targets: Iterable[str],
    *,
    url: str,
    label: str,
    since: float,
    now: float,
    error: str,
    gone: bool,
) -> None:
    """After a failed poll: a feed gone, or failing since ``since`` for a day or more,
    is announced once per failure streak."""
    if gone:
        text = (
            f"Feed {label} is gone (HTTP 410): newsmon no longer polls it. If it moved, put "
            f"its new URL in the watchlist; `newsmon resume {url}` polls it again."
        )
        await raise_notice(store, targets, FEED_GONE, url, since, text, now)
    elif now - since >= FAILING_FOR:
        hours = (now - since) / 3600
        text = (
            f"Feed {label} has failed every poll for {hours:.0f} hours (last error: {error});"
            " newsmon keeps trying, backing off."
        )
        await raise_notice(store, targets, FEED_FAILING, url, since, text, now)


async def silent_feeds(store: Store, now: float) -> list[SilentFeed]:
    """The feeds silent now, by the rule above."""
    return await store.silent_feeds(
        now, beats=SILENT_BEATS, factor=SILENT_FACTOR, floor=SILENT_FLOOR
    )


async def feed_silent(
    store: Store, targets: Iterable[str], feed: SilentFeed, *, label: str, now: float
) -> bool:
    """Once per silence: its number is the feed's count of polls that found something
    new, which a clock jump leaves alone (its start moves with the jump)."""
    text = (
        f"Feed {label} has had nothing new for {span(now - feed.since)}; it usually has"
        f" something new every {span(feed.rhythm)}. It still answers, so it may have moved,"
        " frozen or stopped listing new stories: check it."
    )
    return await raise_notice(store, targets, FEED_SILENT, feed.url, feed.beats, text, now)


async def destination_paused(
    store: Store, targets: Iterable[str], name: str, reason: str, now: float
) -> bool:
    """A destination paused after repeated permanent failures (raised once, as it pauses)."""
    text = (
        f"Destination {name} is paused ({reason}); its alerts wait. Fix it, then run "
        f"`newsmon resume {name}`."
    )
    return await raise_notice(
        store, targets, DESTINATION_PAUSED, name, now, text, now, exclude=name
    )


async def delivery_expired(
    store: Store, targets: Iterable[str], name: str, reason: str, now: float
) -> bool:
    """Alerts to ``name`` given up after ``max_age``: one notice an hour at most."""
    text = (
        f"Alerts to {name} are expiring undelivered after retrying up to their max_age"
        f" (last error: {reason}); `newsmon deliveries --failed` lists them."
    )
    episode = now // EXPIRED_EPISODE
    return await raise_notice(
        store, targets, DELIVERIES_EXPIRED, name, episode, text, now, exclude=name
    )
