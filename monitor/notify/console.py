"""Prints each alert to standard output: the journal under systemd, a terminal by hand."""

from __future__ import annotations

import sys
from typing import TextIO

from monitor.models import Alert, Digest, Notice, Outcome, SendResult
from monitor.notify.render import alert_text, digest_text, notice_text


class ConsoleNotifier:
    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    async def send(self, alert: Alert) -> SendResult:
        return self._print(alert_text(alert))

    async def send_digest(self, digest: Digest) -> SendResult:
        return self._print(digest_text(digest))

    async def send_notice(self, notice: Notice) -> SendResult:
        return self._print(notice_text(notice))

    def _print(self, text: str) -> SendResult:
        print(text, file=self._stream or sys.stdout, flush=True)
        return SendResult(Outcome.SENT, "printed")

    async def close(self) -> None:
        """Nothing to release."""
