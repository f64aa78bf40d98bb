"""Slack incoming webhooks: ``render_slack`` builds the message, ``SlackNotifier`` posts it.

The webhook URL is a secret (anyone holding it can post to the channel), so no detail,
log line or exception text of ours ever contains it; aiohttp's own error strings do, which
is why they are never used (aiohttp #3960).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

import aiohttp

from monitor.models import Alert, Digest, Notice, SendResult
from monitor.notify.http import post
from monitor.notify.render import digest_headline, notice_text
from monitor.notify.text import (
    display_host,
    escape_capped,
    format_published,
    http_url,
    one_line,
    truncate,
)
from monitor.secrets import Secret

log = logging.getLogger(__name__)

# Slack's documented limits (Block Kit reference): text objects in sections and context
# elements 3000 characters, header 150, 50 blocks; the top-level text is truncated past
# 40000. Ours stay well inside: a feed can send a 100 KB title (RELIABILITY.md case 39).
SECTION_LIMIT: Final = 3000
HEADER_LIMIT: Final = 150
MAX_BLOCKS: Final = 50
TITLE_LIMIT: Final = 300
FEED_LIMIT: Final = 200
ALSO_SHOWN: Final = 10

# Slack's control characters in mrkdwn; escaping them is the documented way to show them
# literally, so a feed can neither ping (<!channel>, <@U123>) nor label a link.
_MRKDWN: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Inside <url|label> these would end the URL or start the label.
_URL_UNSAFE: Final = {"|": "%7C", "<": "%3C", ">": "%3E", " ": "%20", '"': "%22"}


def _esc(text: str, limit: int) -> str:
    """Untrusted text on one line, escaped for mrkdwn and capped at ``limit``."""
    return escape_capped(one_line(text), limit, _MRKDWN)


def _link_target(url: str | None) -> str | None:
    """An http(s) URL made safe inside ``<...|...>``: ``| < >`` and spaces
    percent-encoded, then ``&`` escaped as Slack expects; None when it is no link."""
    safe = http_url(url)
    if safe is None:
        return None
    encoded = "".join(_URL_UNSAFE.get(c, c) for c in safe)
    target = encoded.replace("&", "&amp;")
    # A link longer than a section could hold is shown as text instead.
    return target if len(target) <= SECTION_LIMIT - TITLE_LIMIT - 10 else None


def _link(url: str | None, label: str) -> str:
    """``<url|label>`` when ``url`` is a usable link, else the label alone;
    ``label`` must already be escaped."""
    target = _link_target(url)
    return f"<{target}|{label}>" if target else label


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack must not auto-link bare URLs or channel names in feed text.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _also_section(alert: Alert) -> str:
    """The "also carried by" list, as many lines as fit in one section."""
    lines = ["*Also carried by:*"]
    used = len(lines[0])
    shown = 0
    for seen in alert.also[:ALSO_SHOWN]:
        label = _esc(seen.feed, FEED_LIMIT)
        title = _esc(seen.title, TITLE_LIMIT)
        line = f"• {_link(seen.url, label)}: {title}" if title else f"• {_link(seen.url, label)}"
        # Keep room for the "and N more" line.
        if used + 1 + len(line) > SECTION_LIMIT - 40:
            break
        lines.append(line)
        used += 1 + len(line)
        shown += 1
    if shown < len(alert.also):
        lines.append(f"…and {len(alert.also) - shown} more")
    return "\n".join(lines)


def render_slack(alert: Alert) -> dict[str, Any]:
    """An incoming-webhook message for ``alert``: a ``text`` fallback for notifications
    plus blocks (rule, linked title, source, time, snippet, matched words, other outlets,
    the delivery id for human dedupe). Pure; every limit of Slack's is respected."""
    title = _esc(alert.title, TITLE_LIMIT) or "(untitled)"
    feed = _esc(alert.feed, FEED_LIMIT)
    rule = _esc(alert.rule, FEED_LIMIT)
    target = http_url(alert.url)
    host = display_host(target) if target else ""

    source = f"*Source:* {feed}" + (f" ({_esc(host, FEED_LIMIT)})" if host else "")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            # plain_text: Slack shows it as is, so it is not escaped, only capped.
            "text": {
                "type": "plain_text",
                "text": truncate(f"newsmon: {one_line(alert.rule)}", HEADER_LIMIT),
            },
        },
        {"type": "section", "text": _mrkdwn(f"*{_link(alert.url, title)}*")},
        {
            "type": "context",
            "elements": [
                _mrkdwn(source),
                _mrkdwn(f"*Published:* {format_published(alert.published)}"),
                _mrkdwn(f"*Rule:* {rule}"),
            ],
        },
    ]
    snippet = _esc(alert.snippet, SECTION_LIMIT - 2)
    if snippet:
        blocks.append({"type": "section", "text": _mrkdwn(f">{snippet}")})
    matched = _esc(", ".join(alert.matched), SECTION_LIMIT - 20)
    if matched:
        blocks.append({"type": "section", "text": _mrkdwn(f"*Matched:* {matched}")})
    if alert.also:
        blocks.append({"type": "section", "text": _mrkdwn(_also_section(alert))})
    blocks.append(
        {
            "type": "context",
            "elements": [_mrkdwn(f"newsmon delivery {_esc(alert.delivery_id, 200)}")],
        }
    )
    assert len(blocks) <= MAX_BLOCKS  # a fixed layout: at most 7

    text = f"[newsmon] {rule}: {title} ({feed})"
    link = _link_target(alert.url)
    if link:
        text += f"\n{link}"
    return {
        "text": text,  # a few KB at most by construction, far below Slack's 40,000
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _digest_line(alert: Alert) -> str:
    # Cut long feed text before cleaning it: a digest may hold 200 100-KB titles, and
    # four times the limit leaves room for the white space that cleaning collapses.
    title = _esc(alert.title[: TITLE_LIMIT * 4], TITLE_LIMIT) or "(untitled)"
    source = f"({_esc(alert.feed[: FEED_LIMIT * 4], FEED_LIMIT)}, {_esc(alert.rule, FEED_LIMIT)})"
    line = f"• {_link(alert.url, title)} {source}"
    # a long link beside a long title and source would pass a section's limit, and Slack
    # refuses the whole digest for one section: the title then goes unlinked
    return line if len(line) <= SECTION_LIMIT else f"• {title} {source}"


def render_slack_digest(digest: Digest) -> dict[str, Any]:
    """One message for several alerts: a line per alert (linked title, source, rule),
    packed into as few sections as Slack's limits allow, then the digest's delivery id."""
    count = digest.total
    header = truncate(digest_headline(digest), HEADER_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}}
    ]
    lines: list[str] = []
    used = 0  # characters of the section so far, newlines included
    shown = 0
    for alert in digest.alerts:
        line = _digest_line(alert)
        if lines and used + len(line) > SECTION_LIMIT:
            blocks.append({"type": "section", "text": _mrkdwn("\n".join(lines))})
            lines, used = [], 0
        # Room for this section, the "more" line and the closing context block.
        if len(blocks) >= MAX_BLOCKS - 3:
            break
        lines.append(line)
        used += len(line) + 1
        shown += 1
    if lines:
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(lines))})
    if shown < count:
        blocks.append({"type": "section", "text": _mrkdwn(f"…and {count - shown} more")})
    blocks.append(
        {
            "type": "context",
            "elements": [_mrkdwn(f"newsmon delivery {_esc(digest.delivery_id, 200)}")],
        }
    )
    return {
        "text": f"[newsmon] {header.removeprefix('newsmon ')}",
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


def render_slack_notice(notice: Notice) -> dict[str, Any]:
    """An operational notice: its text alone, escaped, nothing unfurled."""
    return {
        "text": _esc(notice_text(notice), SECTION_LIMIT),
        "unfurl_links": False,
        "unfurl_media": False,
    }


class SlackNotifier:
    """Posts alerts to one Slack incoming webhook through the shared aiohttp session.

    Slack answers 200 ``ok``; its permanent errors (400 ``invalid_payload``, 403
    ``action_prohibited``, 404 ``channel_not_found``, 410 ``channel_is_archived``...) are
    PERMANENT with the code in the detail; 429 (with Retry-After), 5xx, timeouts and
    connection errors are RETRY. The session is not ours: ``close`` leaves it open.
    """

    def __init__(
        self, name: str, url: Secret, session: aiohttp.ClientSession, *, timeout: float = 30.0
    ) -> None:
        self.name = name
        self._url = url
        self._session = session
        self._timeout = timeout

    async def send(self, alert: Alert) -> SendResult:
        """Render and post ``alert``; never raises for a failure of Slack's or the network's."""
        return await self._post(render_slack(alert), alert.delivery_id)

    async def send_digest(self, digest: Digest) -> SendResult:
        return await self._post(render_slack_digest(digest), digest.delivery_id)

    async def send_notice(self, notice: Notice) -> SendResult:
        return await self._post(render_slack_notice(notice), notice.id)

    async def _post(self, message: dict[str, Any], delivery: str) -> SendResult:
        body = json.dumps(message, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        result = await post(
            self._session, self._url, body, headers, deadline=self._timeout, peer="Slack"
        )
        log.debug("slack %s: delivery %s %s", self.name, delivery, result.detail)
        return result

    async def close(self) -> None:
        """Nothing to release: the session belongs to the composition root."""
