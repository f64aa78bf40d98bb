"""One careful HTTP POST for every HTTP channel (webhook, Slack).

A destination URL is a secret (a Slack webhook URL is a credential), and aiohttp's own
error strings contain it (aiohttp #3960), so no detail of ours is ever built from them.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Mapping

import aiohttp

from monitor.models import Outcome, SendResult
from monitor.notify.base import classify_http, scrubbed
from monitor.notify.text import capped_line
from monitor.secrets import Secret

# How much of an answer goes into a detail: enough for Slack's error codes.
HINT_LIMIT = 200


async def post(
    session: aiohttp.ClientSession,
    url: Secret,
    body: bytes,
    headers: Mapping[str, str],
    *,
    deadline: float,
    peer: str = "the destination",
) -> SendResult:
    """POST ``body`` and classify the answer; never raises for a network failure."""
    try:
        async with (
            asyncio.timeout(deadline),
            # A webhook that redirects would send the alert somewhere the operator did
            # not configure: not followed, and permanent.
            session.post(url.reveal(), data=body, headers=headers, allow_redirects=False) as resp,
        ):
            raw = await resp.content.read(HINT_LIMIT * 4)
            hint = capped_line(raw.decode("utf-8", "replace"), HINT_LIMIT)
            # a misconfigured URL may point at a server that echoes requests
            secret = url.reveal()
            parts = [p for p in (secret, urllib.parse.urlsplit(secret).path) if len(p) > 1]
            return scrubbed(classify_http(resp.status, resp.headers, hint), parts, "<url>")
    except TimeoutError:
        return SendResult(Outcome.RETRY, f"timed out waiting for {peer}")
    except aiohttp.InvalidURL:
        return SendResult(Outcome.PERMANENT, "the destination URL is not a valid URL")
    except aiohttp.ServerDisconnectedError:
        # The request may have arrived: the one duplicate window (RELIABILITY.md 48).
        return SendResult(Outcome.RETRY, f"{peer} closed the connection without answering")
    except aiohttp.ClientConnectionError as e:
        return SendResult(Outcome.RETRY, f"connection failed: {_describe(e)}")
    except aiohttp.ClientError as e:
        return SendResult(Outcome.RETRY, f"HTTP client error: {type(e).__name__}")


def _describe(e: aiohttp.ClientConnectionError) -> str:
    """An exception's class and errno, without its message (which holds the URL)."""
    os_error = getattr(e, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return f"{type(e).__name__} ({os_error.strerror})"
    return type(e).__name__
