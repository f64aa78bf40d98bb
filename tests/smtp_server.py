"""A real SMTP server for the email tests: aiosmtpd with a handler that records what it
receives and answers as each test scripts it, and the addresses the tests send as and to.

Not a conftest: the ``smtpd`` fixture in conftest.py starts one; tests import the rest.
"""

from __future__ import annotations

import email
import email.policy
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword

PASSWORD = "hunter2-Pa55-9d1e"
SENDER = "newsmon <alerts@example.org>"
TO = ("Desk <desk@example.org>", "ops@example.org")


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Recorder:
    """An aiosmtpd handler that records messages and answers as each test scripts it."""

    messages: list[Received] = field(default_factory=list)
    rcpt_answers: dict[str, str] = field(default_factory=dict)  # address -> refusal
    data_answers: list[str] = field(default_factory=list)  # answers to DATA, in order
    logins: list[bytes] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.rcpt_answers:
            return self.rcpt_answers[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_answers:
            return self.data_answers.pop(0)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 2.0.0 Ok: queued as 42"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append(auth_data.login)
        ok = auth_data.login == b"alerts" and auth_data.password == PASSWORD.encode()
        # handled=False: aiosmtpd then answers 535 itself.
        return AuthResult(success=ok, handled=False)


def free_port() -> int:
    """A port free on 127.0.0.1 now (aiosmtpd's Controller cannot be given port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML parts of a received message."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()
