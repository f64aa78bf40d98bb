"""Email over SMTP: ``render_email`` builds the message, ``EmailNotifier`` sends it.

The message is multipart text + HTML; the HTML is built from escaped text, never from
feed markup (RELIABILITY.md case 41). Every header value is stripped of control
characters so a feed title cannot add a header (CVE-2024-6923, case 40). The
``Message-ID`` is derived from the delivery id, so a retry after an ambiguous failure
(the connection lost after the final dot, RFC 1047) carries the same id and receivers can
drop the copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from typing import Final, Literal

import aiosmtplib

from monitor.models import Alert, Digest, Notice, Outcome, SendResult
from monitor.notify.base import scrubbed
from monitor.notify.render import digest_headline, notice_text, storm_headline
from monitor.notify.text import (
    capped_line,
    display_host,
    format_published,
    http_url,
    one_line,
    split_matches,
    truncate,
)
from monitor.secrets import Secret

log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]
SECURITY_MODES: Final = ("starttls", "tls", "none")

SUBJECT_LIMIT: Final = 200
TITLE_LIMIT: Final = 300
FIELD_LIMIT: Final = 300
SNIPPET_LIMIT: Final = 1000
ALSO_SHOWN: Final = 20
# How much of a server's reply goes into a detail.
REPLY_LIMIT: Final = 200
# QUIT after a successful send is a courtesy; it must not hold the relay up.
QUIT_TIMEOUT: Final = 5.0

_FONT: Final = "-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"


def header_value(text: str) -> str:
    """A header value on one line: every C0/C1 control, CR and LF (and U+2028/U+2029)
    becomes a space, runs of white space collapse, bidi and zero-width characters go.

    ``=?`` loses its meaning too: assigning a value to an ``EmailMessage`` header decodes
    RFC 2047 encoded words in it, so ``=?UTF-8?Q?=0A?=Bcc: x`` would come back as a line
    break and a Bcc header in the serialized message (seen on Python 3.11.7).
    """
    return one_line(text).replace("=?", "= ?")


def message_id(delivery_id: str, sender: str) -> str:
    """A Message-ID that is the same on every attempt of one delivery.

    The delivery id is hashed: it may hold characters a msg-id cannot (RFC 5322 3.6.4).
    """
    digest = hashlib.sha256(delivery_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2]
    if not domain or not all(c.isalnum() or c in ".-" for c in domain) or not domain.isascii():
        domain = "newsmon.invalid"
    return f"<{digest}.newsmon@{domain}>"


def render_subject(alert: Alert) -> str:
    """``[newsmon] <rule>: <title>``, one line, at most SUBJECT_LIMIT characters."""
    title = header_value(alert.title) or "(untitled)"
    return truncate(f"[newsmon] {header_value(alert.rule)}: {title}", SUBJECT_LIMIT)


@dataclass(frozen=True, slots=True)
class _Card:
    """One alert's fields cleaned once (one line, capped), for the text and the HTML part."""

    title: str  # "(untitled)" when the feed gave none
    url: str | None  # http(s) only
    host: str
    source: str
    published: str
    rule: str
    matched: str  # the matched words, joined
    words: tuple[str, ...]  # the matched words, to highlight in the snippet
    snippet: str
    also: tuple[tuple[str, str, str | None], ...]  # feed, title, link of the first shown
    more: int  # other outlets not shown


def _card(alert: Alert) -> _Card:
    url = http_url(alert.url)
    return _Card(
        title=capped_line(alert.title, TITLE_LIMIT) or "(untitled)",
        url=url,
        host=display_host(url) if url else "",
        source=capped_line(alert.feed, FIELD_LIMIT),
        published=format_published(alert.published),
        rule=one_line(alert.rule),
        matched=capped_line(", ".join(alert.matched), FIELD_LIMIT),
        words=alert.matched,
        snippet=capped_line(alert.snippet, SNIPPET_LIMIT),
        also=tuple(
            (capped_line(s.feed, FIELD_LIMIT), capped_line(s.title, TITLE_LIMIT), http_url(s.url))
            for s in alert.also[:ALSO_SHOWN]
        ),
        more=max(0, len(alert.also) - ALSO_SHOWN),
    )


def _text_card(card: _Card) -> str:
    """One alert as plain text, ending with an empty line."""
    lines = [card.title]
    if card.url:
        lines.append(card.url)
    lines.append("")
    lines.append(f"Source:    {card.source}" + (f" ({card.host})" if card.host else ""))
    lines.append(f"Published: {card.published}")
    lines.append(f"Rule:      {card.rule}")
    if card.words:
        lines.append(f"Matched:   {card.matched}")
    if card.snippet:
        lines += ["", card.snippet]
    if card.also:
        lines += ["", "Also carried by:"]
        for feed, title, url in card.also:
            line = f"- {feed}"
            if title:
                line += f": {title}"
            if url:
                line += f" <{url}>"
            lines.append(line)
        if card.more:
            lines.append(f"- and {card.more} more")
    return "\n".join([*lines, ""])


def _text(body: list[str], delivery: str) -> str:
    """The text/plain part: what the HTML part says, readable in any client."""
    return "\n".join([*body, "-- ", f"newsmon delivery {one_line(delivery)}"]) + "\n"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _a(url: str | None, label_html: str, style: str) -> str:
    """A link when there is an http(s) ``url`` (from ``http_url``), else the label alone;
    the label is escaped HTML."""
    if url is None:
        return label_html
    return f'<a href="{_e(url)}" style="{style}">{label_html}</a>'


def _outlet(feed: str, title: str, url: str | None, style: str) -> str:
    """Another outlet that carried the story: its name and linked title, or, with no
    title, its linked name."""
    return f"{_e(feed)}: {_a(url, _e(title), style)}" if title else _a(url, _e(feed), style)


def _highlight(snippet: str, matched: tuple[str, ...]) -> str:
    """The snippet escaped, with the matched words in bold."""
    out = []
    for run, is_match in split_matches(snippet, matched):
        if is_match:
            out.append(f'<strong style="background:#fff1a8;color:#1d2430">{_e(run)}</strong>')
        else:
            out.append(_e(run))
    return "".join(out)


def _html(card: _Card, subject: str, delivery: str) -> str:
    """The text/html part, built only from escaped text; links are http(s) only.

    Tables and inline styles, because that is what mail clients render reliably.
    """
    source = _e(card.source)
    if card.host:
        source += f' <span style="color:#6b7685">({_e(card.host)})</span>'
    rows = [
        ("Source", source),
        ("Published", _e(card.published)),
        ("Rule", f'<span style="font-weight:600">{_e(card.rule)}</span>'),
    ]
    if card.words:
        rows.append(("Matched", _e(card.matched)))
    meta = "".join(
        f'<tr><td style="padding:2px 12px 2px 0;color:#6b7685;vertical-align:top;'
        f'white-space:nowrap">{name}</td><td style="padding:2px 0">{value}</td></tr>'
        for name, value in rows
    )
    # overflow-wrap: an unbroken 300-character "word" from a feed must not widen the card.
    cell = (
        f"font-family:{_FONT};font-size:14px;line-height:1.5;color:#1d2430;"
        "overflow-wrap:anywhere;word-break:break-word"
    )
    link = "color:#0b57d0;text-decoration:none"
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(subject)}</title></head>",
        '<body style="margin:0;padding:0;background:#f3f4f6">',
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
        'style="background:#f3f4f6"><tr><td align="center" style="padding:24px 12px">',
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
        'style="max-width:640px;background:#ffffff;border:1px solid #dde1e6;border-radius:6px">',
        f'<tr><td style="padding:18px 24px 4px;{cell};font-size:12px;color:#6b7685;'
        'letter-spacing:.04em;text-transform:uppercase">newsmon alert</td></tr>',
        f'<tr><td dir="auto" style="padding:4px 24px 12px;{cell};font-size:20px;line-height:1.3;'
        f'font-weight:600">{_a(card.url, _e(card.title), link)}</td></tr>',
        f'<tr><td style="padding:0 24px 12px"><table role="presentation" cellpadding="0" '
        f'cellspacing="0" style="{cell}">{meta}</table></td></tr>',
    ]
    if card.snippet:
        parts.append(
            f'<tr><td style="padding:4px 24px 16px"><div dir="auto" style="{cell};'
            f'border-left:3px solid #c9ced6;padding:4px 0 4px 12px;color:#333c48">'
            f"{_highlight(card.snippet, card.words)}</div></td></tr>"
        )
    if card.also:
        items = []
        for outlet in card.also:
            items.append(f'<li style="margin:2px 0">{_outlet(*outlet, link)}</li>')
        if card.more:
            items.append(f"<li>and {card.more} more</li>")
        parts.append(
            f'<tr><td style="padding:0 24px 16px;{cell}"><div style="font-weight:600">'
            f'Also carried by</div><ul style="margin:4px 0 0;padding-left:20px">'
            f"{''.join(items)}</ul></td></tr>"
        )
    parts += [
        f'<tr><td style="padding:12px 24px 18px;border-top:1px solid #eceef1;{cell};'
        f'font-size:12px;color:#8a94a3">Sent by newsmon · delivery '
        f"{_e(one_line(delivery))}</td></tr>",
        "</table></td></tr></table></body></html>",
    ]
    return "\n".join(parts) + "\n"


def render_email(alert: Alert, *, sender: str, to: tuple[str, ...], date: datetime) -> EmailMessage:
    """The whole message for ``alert``: headers, a text part and an HTML alternative.

    Pure: the same alert, addresses and date give the same message. Header values are
    one line each; the Message-ID depends only on the delivery id and the sender's domain.
    """
    card, subject, delivery = _card(alert), render_subject(alert), alert.delivery_id
    return _message(
        delivery, subject, _text([_text_card(card)], delivery), _html(card, subject, delivery),
        sender=sender, to=to, date=date,
    )  # fmt: skip


def _message(
    delivery: str, subject: str, text: str, html_part: str, *,
    sender: str, to: tuple[str, ...], date: datetime,
) -> EmailMessage:  # fmt: skip
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = header_value(sender)
    msg["To"] = ", ".join(header_value(t) for t in to)
    msg["Date"] = format_datetime(date.astimezone(UTC))
    msg["Message-ID"] = message_id(delivery, sender)
    # RFC 3834: an automatic message; vacation responders should not answer it.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Newsmon-Delivery"] = truncate(header_value(delivery), FIELD_LIMIT)
    msg.set_content(text)
    msg.add_alternative(html_part, subtype="html")
    return msg


def render_digest_subject(digest: Digest) -> str:
    """``[newsmon] digest: N alerts (rule, rule)``, or a storm summary's headline; one
    line, capped."""
    if digest.storm_rule is not None:
        return truncate(f"[newsmon] {header_value(storm_headline(digest))}", SUBJECT_LIMIT)
    count = len(digest.alerts)
    rules = ", ".join(dict.fromkeys(header_value(a.rule) for a in digest.alerts))
    return truncate(f"[newsmon] digest: {count} alert{'s' if count != 1 else ''} ({rules})",
                    SUBJECT_LIMIT)  # fmt: skip


def _digest_html(digest: Digest, cards: list[_Card], subject: str) -> str:
    """The text/html part of a digest: each alert's linked title, source and host, time,
    rule, matched words, other outlets and snippet, built only from escaped text like
    ``_html``."""
    cell = f"font-family:{_FONT};font-size:14px;line-height:1.5;color:#1d2430"
    link = "color:#0b57d0;text-decoration:none;font-weight:600"
    more = digest.more
    head = digest_headline(digest)
    more_row = (
        [f'<tr><td style="padding:10px 24px;{cell}">…and {more} more</td></tr>'] if more else []
    )
    small = 'style="font-size:12px;color:#6b7685"'
    items = []
    for card in cards:
        source = f"{card.source} ({card.host})" if card.host else card.source
        meta = " · ".join(_e(x) for x in (source, card.published, card.rule))
        # as a single alert has them (docs/alerts.md): the matched words, the other outlets
        extra = [f"Matched: {_e(card.matched)}"] if card.words else []
        if card.also:
            outlets = [_outlet(*outlet, "color:#0b57d0") for outlet in card.also]
            outlets += [f"and {card.more} more"] if card.more else []
            extra.append(f"Also carried by {', '.join(outlets)}")
        items.append(
            f'<tr><td style="padding:10px 24px;border-top:1px solid #eceef1;{cell};'
            f'overflow-wrap:anywhere"><div dir="auto">{_a(card.url, _e(card.title), link)}</div>'
            f"<div {small}>{meta}</div>"
            + "".join(f"<div {small}>{line}</div>" for line in extra)
            + f'<div dir="auto" style="color:#333c48">{_highlight(card.snippet, card.words)}</div>'
            + "</td></tr>"
        )
    return (
        "\n".join(
            [
                '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>{_e(subject)}</title></head>",
                '<body style="margin:0;padding:24px 12px;background:#f3f4f6">',
                '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
                'style="max-width:640px;margin:0 auto;background:#ffffff;'
                'border:1px solid #dde1e6">',
                f'<tr><td style="padding:18px 24px 8px;{cell};font-size:18px;font-weight:600">'
                f"{_e(head)}</td></tr>",
                *items,
                *more_row,
                f'<tr><td style="padding:12px 24px 18px;border-top:1px solid #eceef1;{cell};'
                f'font-size:12px;color:#8a94a3">Sent by newsmon · delivery '
                f"{_e(one_line(digest.delivery_id))}</td></tr>",
                "</table></body></html>",
            ]
        )
        + "\n"
    )


def render_digest_email(
    digest: Digest, *, sender: str, to: tuple[str, ...], date: datetime
) -> EmailMessage:
    """One message for several alerts; its Message-ID comes from the digest's own id."""
    cards = [_card(a) for a in digest.alerts]
    subject = render_digest_subject(digest)
    text = [digest_headline(digest), ""]
    text += [_text_card(c) for c in cards]
    if digest.more:
        text += [f"…and {digest.more} more", ""]
    return _message(
        digest.delivery_id, subject, _text(text, digest.delivery_id),
        _digest_html(digest, cards, subject), sender=sender, to=to, date=date,
    )  # fmt: skip


def render_notice_email(
    notice: Notice, *, sender: str, to: tuple[str, ...], date: datetime
) -> EmailMessage:
    """An operational notice: its kind and subject in the Subject, its text as the body."""
    subject = truncate(
        f"[newsmon notice] {header_value(notice.kind)}: {header_value(notice.subject)}",
        SUBJECT_LIMIT,
    )
    text = notice_text(notice)
    body = f'<!DOCTYPE html><html lang="en"><body><p>{_e(text)}</p></body></html>\n'
    return _message(notice.id, subject, text + "\n", body, sender=sender, to=to, date=date)


def _reply(code: int, message: str) -> str:
    """An SMTP reply as one short line."""
    return truncate(f"{code} {one_line(message)}", REPLY_LIMIT)


def classify_smtp_error(e: Exception) -> SendResult:
    """What a failed SMTP exchange means for the delivery: 4xx and network trouble retry;
    5xx, authentication refused and a server lacking what we require are permanent."""
    if isinstance(e, aiosmtplib.SMTPRecipientsRefused):
        # Every recipient refused. One temporary refusal is worth another attempt.
        outcome = Outcome.RETRY if any(r.code < 500 for r in e.recipients) else Outcome.PERMANENT
        refused = "; ".join(f"{r.recipient} {_reply(r.code, r.message)}" for r in e.recipients)
        return SendResult(outcome, truncate(f"all recipients refused: {refused}", 500))
    if isinstance(e, aiosmtplib.SMTPResponseException):
        stage = {
            aiosmtplib.SMTPAuthenticationError: "authentication failed",
            aiosmtplib.SMTPSenderRefused: "sender refused",
            aiosmtplib.SMTPDataError: "message refused",
            aiosmtplib.SMTPConnectResponseError: "greeting refused",
            aiosmtplib.SMTPHeloError: "EHLO refused",
        }.get(type(e), "server refused")
        outcome = Outcome.RETRY if 400 <= e.code < 500 else Outcome.PERMANENT
        return SendResult(outcome, f"{stage}: {_reply(e.code, e.message)}")
    if isinstance(e, TimeoutError):  # aiosmtplib's timeouts are TimeoutErrors too
        return SendResult(Outcome.RETRY, "timed out talking to the SMTP server")
    if isinstance(e, aiosmtplib.SMTPServerDisconnected):
        # After the final dot this is the RFC 1047 gap: the same Message-ID goes again.
        return SendResult(Outcome.RETRY, "the SMTP server closed the connection")
    if isinstance(e, aiosmtplib.SMTPConnectError):
        return SendResult(Outcome.RETRY, f"could not connect: {capped_line(str(e), 200)}")
    if isinstance(e, aiosmtplib.SMTPException):
        # STARTTLS required but not offered, no usable AUTH mechanism, SMTPUTF8 missing:
        # the server lacks what the configuration requires. Fail closed, do not retry.
        return SendResult(Outcome.PERMANENT, capped_line(str(e), 300))
    if isinstance(e, ssl.SSLError):
        return SendResult(Outcome.RETRY, f"TLS error: {e.reason or type(e).__name__}")
    if isinstance(e, OSError):
        return SendResult(Outcome.RETRY, f"network error: {e.strerror or type(e).__name__}")
    if isinstance(e, ValueError):
        # aiosmtplib refuses an address it cannot send safely (a configuration mistake).
        detail = capped_line(str(e), REPLY_LIMIT)
        return SendResult(Outcome.PERMANENT, f"invalid message or address: {detail}")
    raise e


class EmailNotifier:
    """Sends alerts by SMTP, one connection per alert, through aiosmtplib.

    ``security``: "starttls" requires the upgrade (a server that does not offer it fails
    closed, before any AUTH); "tls" is implicit TLS (port 465); "none" is plain SMTP, for
    a local relay. ``timeout`` bounds the whole exchange and each command within it.
    ``clock`` (Unix seconds) dates the messages.
    """

    def __init__(
        self,
        name: str,
        *,
        host: str,
        port: int,
        security: Security,
        username: str | None,
        password: Secret | None,
        sender: str,
        to: tuple[str, ...],
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {', '.join(SECURITY_MODES)}")
        if not to:
            raise ValueError("at least one recipient is required")
        self.name = name
        self._host = host
        self._port = port
        self._security = security
        self._username = username
        self._password = password
        self._sender = sender
        self._to = to
        self._timeout = timeout
        self._clock = clock
        # The envelope: bare addresses, whatever display names the headers carry.
        self._envelope_from = bare_address(sender)
        self._envelope_to = [bare_address(t) for t in to]

    async def send(self, alert: Alert) -> SendResult:
        """Render and send ``alert``; never raises for a failure of the server or network.

        Some recipients refused and others accepted is SENT, naming the refused ones.
        """
        message = render_email(alert, sender=self._sender, to=self._to, date=self._now())
        return await self._send(message, alert.delivery_id)

    async def send_digest(self, digest: Digest) -> SendResult:
        """Several alerts in one message; like ``send`` otherwise."""
        message = render_digest_email(digest, sender=self._sender, to=self._to, date=self._now())
        return await self._send(message, digest.delivery_id)

    async def send_notice(self, notice: Notice) -> SendResult:
        message = render_notice_email(notice, sender=self._sender, to=self._to, date=self._now())
        return await self._send(message, notice.id)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def _send(self, message: EmailMessage, delivery: str) -> SendResult:
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            use_tls=self._security == "tls",
            start_tls=self._security == "starttls",
            username=self._username,
            password=self._password.reveal() if self._password is not None else None,
            timeout=self._timeout,
        )
        try:
            async with asyncio.timeout(self._timeout):
                await client.connect()
                refused, reply = await client.send_message(
                    message, sender=self._envelope_from, recipients=self._envelope_to
                )
        except (aiosmtplib.SMTPException, OSError, ValueError) as e:
            # TimeoutError is an OSError; CancelledError is neither and passes through.
            client.close()
            result = self._scrubbed(classify_smtp_error(e))
        else:
            await _quit(client)
            result = self._scrubbed(_accepted(len(self._envelope_to), refused, reply))
        log.debug("email %s: delivery %s %s", self.name, delivery, result.detail)
        return result

    def _scrubbed(self, result: SendResult) -> SendResult:
        """Servers do not echo passwords, but a detail must be safe whatever answered."""
        secret = self._password.reveal() if self._password is not None else ""
        return scrubbed(result, [secret], "<secret>")

    async def close(self) -> None:
        """Nothing to release: each send opens and closes its own connection."""


def bare_address(address: str) -> str:
    """The addr-spec of ``Name <addr>``; raises ValueError when there is none (the
    watchlist's check calls this too, so that a bad address never reaches a daemon)."""
    found = getaddresses([header_value(address)])
    if len(found) > 1:
        raise ValueError(f"expected one email address, got {address!r}")
    bare = found[0][1] if found else ""
    if "@" not in bare:
        raise ValueError(f"not an email address: {address!r}")
    try:  # Address() checks the parts
        Address(addr_spec=bare)
    except (ValueError, HeaderParseError) as e:
        raise ValueError(f"not an email address: {address!r} ({e})") from None
    return bare


def _accepted(total: int, refused: dict[str, aiosmtplib.SMTPResponse], reply: str) -> SendResult:
    answer = capped_line(reply, REPLY_LIMIT)
    if not refused:
        return SendResult(Outcome.SENT, f"accepted: {answer}")
    names = "; ".join(f"{rcpt} {_reply(r.code, r.message)}" for rcpt, r in refused.items())
    detail = f"sent to {total - len(refused)} of {total} recipients; refused: {names}"
    return SendResult(Outcome.SENT, truncate(detail, 500))


async def _quit(client: aiosmtplib.SMTP) -> None:
    """Say QUIT politely; the message is already accepted, so a failure here is no failure."""
    try:
        async with asyncio.timeout(QUIT_TIMEOUT):
            await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
