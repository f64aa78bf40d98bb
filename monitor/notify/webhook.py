"""Generic webhook: JSON POST, optionally signed with HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp

from monitor.models import Alert, Digest, Notice, SendResult
from monitor.notify.http import post
from monitor.notify.render import alert_json, digest_json, notice_json
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
        return await self._post(alert_json(alert), alert.delivery_id)

    async def send_digest(self, digest: Digest) -> SendResult:
        return await self._post(digest_json(digest), digest.delivery_id)

    async def send_notice(self, notice: Notice) -> SendResult:
        return await self._post(notice_json(notice), notice.id)

    async def _post(self, payload: dict[str, Any], delivery: str) -> SendResult:
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Newsmon-Delivery": delivery,
            "Idempotency-Key": delivery,
        }
        if self._secret is not None:
            headers["X-Newsmon-Signature"] = sign(body, self._secret)
        return await post(self._session, self._url, body, headers, deadline=self._timeout)

    async def close(self) -> None:
        """The session belongs to the daemon."""
