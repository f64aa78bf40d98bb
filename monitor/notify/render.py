"""Alert content shared by every channel, apart from any transport."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from monitor.models import Alert, Digest, Notice
from monitor.notify.text import one_line


def alert_json(alert: Alert) -> dict[str, Any]:
    """The generic webhook body of DESIGN.md section 4."""
    published = (
        alert.published.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if alert.published else None
    )  # the Z says UTC: an aware time in another zone is converted, as email and Slack do
    return {
        "id": alert.hit_id,
        "rule": alert.rule,
        "title": alert.title,
        "url": alert.url,
        "feed": alert.feed,
        "published": published,
        "matched": list(alert.matched),
        "snippet": alert.snippet,
        "also": [{"url": a.url, "feed": a.feed, "title": a.title} for a in alert.also],
    }


def alert_text(alert: Alert) -> str:
    """A plain-text rendering, for the console and text fallbacks: what a publisher wrote
    stays on its own line, so no title can pass for another alert's line."""
    title, feed = one_line(alert.title), one_line(alert.feed)
    lines = [f"[{alert.rule}] {title}", f"  {feed}: {alert.url or '(no link)'}"]
    if alert.matched:
        lines.append(f"  matched: {one_line(', '.join(alert.matched))}")
    if alert.snippet:
        lines.append(f"  {one_line(alert.snippet)}")
    lines.extend(f"  also: {one_line(f'{a.feed}: {a.url or a.title}')}" for a in alert.also)
    return "\n".join(lines)


def digest_json(digest: Digest) -> dict[str, Any]:
    """The generic webhook body of a digest (DESIGN.md section 4), or of a storm summary
    (``"storm": true``, the rule, the count, the first few hits)."""
    if digest.storm_rule is not None:
        return {
            "storm": True,
            "notifier": digest.notifier,
            "rule": digest.storm_rule,
            "count": digest.storm_count,
            "text": storm_headline(digest),
            "hits": [alert_json(a) for a in digest.alerts],
        }
    return {
        "digest": True,
        "notifier": digest.notifier,
        "hits": [alert_json(a) for a in digest.alerts],
    }


def digest_text(digest: Digest) -> str:
    """A plain-text rendering of a digest: a count, then each alert; of a storm summary,
    its headline and the first few titles with their links."""
    if digest.storm_rule is not None:
        lines = [
            f"  {one_line(f'{a.title} ({a.feed})')}: {a.url or '(no link)'}" for a in digest.alerts
        ]
        more = digest.more
        return "\n".join(
            [storm_headline(digest), *lines, *([f"  …and {more} more"] if more else [])]
        )
    count = len(digest.alerts)
    head = f"[newsmon digest] {count} alert{'s' if count != 1 else ''}"
    return "\n\n".join([head, *(alert_text(a) for a in digest.alerts)])


def digest_headline(digest: Digest) -> str:
    """One line that says what a digest is: ``newsmon digest: N alerts``, or a storm's
    headline."""
    if digest.storm_rule is not None:
        return one_line(storm_headline(digest))
    count = digest.total
    return f"newsmon digest: {count} alert{'s' if count != 1 else ''}"


def storm_headline(digest: Digest) -> str:
    """``rule: N more stories in the last hour — newsmon hits --rule rule``."""
    rule, count = digest.storm_rule or "", digest.storm_count
    return (
        f"{rule}: {count} more stor{'ies' if count != 1 else 'y'} in the last hour"
        f" — newsmon hits --rule {rule}"
    )


def notice_json(notice: Notice) -> dict[str, Any]:
    """The generic webhook body of an operational notice."""
    return {
        "notice": True,
        "id": notice.id,
        "kind": notice.kind,
        "subject": notice.subject,
        "text": notice.text,
    }


def notice_text(notice: Notice) -> str:
    """A notice on one line, for the console, Slack and email."""
    return f"[newsmon notice] {notice.kind}: {notice.text}"
