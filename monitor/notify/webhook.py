"""Generic webhook: JSON POST, optionally signed with HMAC-SHA256."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import aiohttp

from monitor.models import Alert, Outcome, SendResult
from monitor.notify.base import classify_http
from monitor.notify.render import alert_json
from monitor.secrets import Secret


def sign(body: bytes, secret: Secret) -> str:
    """The X-Newsmon-Signature value: covers the exact bytes sent."""
    digest = hmac.new(secret.reveal().encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookNotifier:
    def __init__(
        self,
        name: str,
        url: Secret,
        session: aiohttp.ClientSession,
        *,
        secret: Secret | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.name = name
        self._url = url
        self._session = session
        self._secret = secret
        self._timeout = timeout

    async def send(self, alert: Alert) -> SendResult:
        body = json.dumps(alert_json(alert), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Newsmon-Delivery": alert.delivery_id,
            "Idempotency-Key": alert.delivery_id,
        }
        if self._secret is not None:
            headers["X-Newsmon-Signature"] = sign(body, self._secret)
        return await post(self._session, self._url, body, headers, self._timeout)

    async def close(self) -> None:
        """The session belongs to the daemon."""


async def post(
    session: aiohttp.ClientSession,
    url: Secret,
    body: bytes,
    headers: dict[str, str],
    deadline: float,
) -> SendResult:
    """POST and classify the answer; errors are described without the (secret) URL."""
    try:
        async with (
            asyncio.timeout(deadline),
            session.post(url.reveal(), data=body, headers=headers, allow_redirects=False) as resp,
        ):
            hint = (await resp.content.read(300)).decode("utf-8", "replace")
            return classify_http(resp.status, resp.headers, " ".join(hint.split())[:200])
    except TimeoutError:
        return SendResult(Outcome.RETRY, f"no answer within {deadline:g}s")
    except aiohttp.ClientConnectorError as e:
        return SendResult(Outcome.RETRY, f"cannot connect: {e.os_error.strerror or 'error'}")
    except aiohttp.InvalidURL:
        return SendResult(Outcome.PERMANENT, "the destination URL is invalid")
    except aiohttp.ClientError as e:
        return SendResult(Outcome.RETRY, f"HTTP exchange failed: {type(e).__name__}")
