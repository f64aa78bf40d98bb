"""Alert content shared by every channel, apart from any transport."""

from __future__ import annotations

from typing import Any

from monitor.models import Alert, Digest


def alert_json(alert: Alert) -> dict[str, Any]:
    """The generic webhook body of DESIGN.md section 4."""
    published = alert.published.strftime("%Y-%m-%dT%H:%M:%SZ") if alert.published else None
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
    """A plain-text rendering, for the console and text fallbacks."""
    lines = [f"[{alert.rule}] {alert.title}", f"  {alert.feed}: {alert.url or '(no link)'}"]
    if alert.matched:
        lines.append(f"  matched: {', '.join(alert.matched)}")
    if alert.snippet:
        lines.append(f"  {alert.snippet}")
    lines.extend(f"  also: {a.feed}: {a.url or a.title}" for a in alert.also)
    return "\n".join(lines)


def digest_json(digest: Digest) -> dict[str, Any]:
    """The generic webhook body of a digest (DESIGN.md section 4)."""
    return {
        "digest": True,
        "notifier": digest.notifier,
        "hits": [alert_json(a) for a in digest.alerts],
    }


def digest_text(digest: Digest) -> str:
    """A plain-text rendering of a digest: a count, then each alert."""
    count = len(digest.alerts)
    head = f"[newsmon digest] {count} alert{'s' if count != 1 else ''}"
    return "\n\n".join([head, *(alert_text(a) for a in digest.alerts)])
