"""The email channel against a real aiosmtpd server on 127.0.0.1 (and two scripted ones)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.models import AlsoSeen, Digest, Outcome
from monitor.notify.email import EmailNotifier, Security, render_digest_email, render_email
from monitor.notify.text import display_host
from monitor.secrets import Secret
from tests.notify_servers import assert_no_leak, make_alert
from tests.smtp_server import PASSWORD, SENDER, TO, Recorder, parts

# aiosmtpd logs the dialogue it serves (AUTH lines included) under "mail.log": that is the
# server's side of the test, not newsmon's, so the leak checks leave it out.
SERVER_LOGGER = "mail.log"
# The headers render_email writes, and the only ones a received message may have.
EXPECTED_HEADERS = {
    "Subject",
    "From",
    "To",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "X-Newsmon-Delivery",
    "MIME-Version",
    "Content-Type",
}


def notifier(
    port: int,
    *,
    security: Security = "none",
    username: str | None = None,
    password: str | None = None,
    to: tuple[str, ...] = TO,
    timeout: float = 5.0,
) -> EmailNotifier:
    return EmailNotifier(
        "desk-email",
        host="127.0.0.1",
        port=port,
        security=security,
        username=username,
        password=Secret(password) if password is not None else None,
        sender=SENDER,
        to=to,
        timeout=timeout,
    )


async def test_sends_multipart_text_and_html(smtpd: tuple[Recorder, int]) -> None:
    """Plain SMTP delivers one multipart text+HTML message with our headers to each recipient."""
    recorder, port = smtpd
    result = await notifier(port).send(make_alert())
    assert result.outcome is Outcome.SENT
    assert result.detail == "accepted: 2.0.0 Ok: queued as 42"
    [received] = recorder.messages
    assert received.mail_from == "alerts@example.org"
    assert received.rcpt_tos == ["desk@example.org", "ops@example.org"]
    msg = received.message
    assert msg.get_content_type() == "multipart/alternative"
    # Python's folder may break right after "Subject:" (legal folding white space), and
    # its parser keeps that space; mail clients drop it.
    assert msg["Subject"].lstrip() == (
        "[newsmon] russia-embassy: Russia's embassy in Ankara says talks were useful"
    )
    assert msg["From"] == SENDER
    assert msg["To"] == "Desk <desk@example.org>, ops@example.org"
    assert parsedate_to_datetime(msg["Date"]).tzinfo is not None
    assert msg["Message-ID"].endswith("@example.org>")
    assert msg["Auto-Submitted"] == "auto-generated"
    text, html = parts(msg)
    assert "Russia's embassy in Ankara says talks were useful" in text
    assert "https://www.example.org/news/2025/02/27/russia-embassy?utm=x&page=2" in text
    assert "Source:    Business Recorder (www.example.org)" in text
    assert "Published: 2025-02-27 09:58 UTC" in text
    assert "Example Net: Ankara talks useful" in text
    assert (
        '<a href="https://www.example.org/news/2025/02/27/russia-embassy?utm=x&amp;page=2"' in html
    )
    assert ">Russia</strong>&#x27;s <strong" in html  # matched words in bold
    assert "Also carried by" in html


async def test_html_is_built_from_escaped_text(smtpd: tuple[Recorder, int]) -> None:
    """Markup and javascript: links from a feed arrive as inert text in the HTML part."""
    recorder, port = smtpd
    alert = make_alert(
        title='<script>alert(1)</script><img src=x onerror="alert(2)">',
        url="javascript:alert(3)",
        snippet='<div style="position:fixed;top:0">Russia</div> & <a href="https://evil">x</a>',
        feed="<b>Feed</b>",
        matched=("Russia", "<b>"),
    )
    result = await notifier(port).send(alert)
    assert result.outcome is Outcome.SENT
    _, html = parts(recorder.messages[0].message)
    assert "<script" not in html
    assert "<img" not in html
    assert "javascript:" not in html
    assert 'href="https://evil"' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;div style=&quot;position:fixed;top:0&quot;&gt;" in html
    assert ">Russia</strong>" in html
    assert "&lt;b&gt;Feed&lt;/b&gt;" in html
    # Every link left is one of ours, to an http(s) URL.
    hrefs = [chunk.split('"', 1)[0] for chunk in html.split('href="')[1:]]
    assert hrefs
    assert all(h.startswith(("https://", "http://")) for h in hrefs)


@pytest.mark.parametrize(
    "title",
    [
        "Hello\r\nBcc: victim@example.com",
        "Hello\nBcc: victim@example.com\r\n\r\nbody",
        "=?UTF-8?Q?=0A?=Bcc: victim@example.com",
        "Hello\u2028Bcc: victim@example.com\u0085X-Evil: 1",
        "Hello\x00\x1b[31m\x9bBcc: victim@example.com",
        "Long " + "x" * 2000 + "\r\nBcc: victim@example.com",
    ],
    ids=["crlf", "lf-and-body", "encoded-word", "unicode-separators", "nul-and-c1", "long"],
)
async def test_title_cannot_inject_headers(title: str, smtpd: tuple[Recorder, int]) -> None:
    """Controls in a title add no header and no recipient; the subject is one capped line."""
    recorder, port = smtpd
    result = await notifier(port).send(make_alert(title=title, delivery_id="d-inject\r\nX-A: b"))
    assert result.outcome is Outcome.SENT
    [received] = recorder.messages
    assert received.rcpt_tos == ["desk@example.org", "ops@example.org"]
    msg = received.message
    assert set(msg.keys()) == EXPECTED_HEADERS
    subject = str(msg["Subject"]).lstrip()
    assert subject.startswith("[newsmon] russia-embassy: ")
    assert len(subject) <= 200
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in subject)
    assert "\u2028" not in subject
    for value in msg.values():
        assert "\n" not in str(value)


async def test_unicode_deception_is_undone_in_subject_text_and_html(
    smtpd: tuple[Recorder, int],
) -> None:
    """RELIABILITY.md case 42 in email: a right-to-left override and zero-width characters
    leave the subject and both parts, and a homograph host is shown in punycode."""
    recorder, port = smtpd
    deceptive = "Invoice \u202egpj.exe\u200b\u200d\u2066 due"
    homograph = "https://\u0430pple.com/news"  # a Cyrillic a
    alert = make_alert(title=deceptive, url=homograph)
    assert (await notifier(port).send(alert)).outcome is Outcome.SENT
    msg = recorder.messages[0].message
    text, html = parts(msg)
    invisible = "\u202e\u200b\u200d\u2066"
    for shown in (str(msg["Subject"]), text, html):
        assert not any(c in shown for c in invisible)
        assert "Invoice gpj.exe due" in shown
    assert "(xn--pple-43d.com)" in text
    assert "(xn--pple-43d.com)" in html


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://fa\u00df.de/konto", "xn--fa-hia.de"),  # not fass.de, another domain
        ("https://stra\u00dfe.de/", "xn--strae-oqa.de"),
        ("https://Example.COM/x", "example.com"),
        ("https://\u0430pple.com/", "xn--pple-43d.com"),
    ],
)
def test_a_host_is_shown_as_a_browser_resolves_it(url: str, shown: str) -> None:
    """The source host is the one the link opens: UTS 46 without transitional mappings, as
    browsers resolve it (Chromium: new URL("https://fa\u00df.de/").host is xn--fa-hia.de).
    Python's "idna" codec is IDNA 2003 and showed fass.de, a different registrable
    domain."""
    assert display_host(url) == shown


def test_only_what_matched_is_highlighted_in_its_case() -> None:
    """A rule on 'WHO' (exact case) matched "WHO": the email highlights that, not every
    "who" of the snippet (matched words are recorded as found)."""
    alert = make_alert(
        matched=("WHO",), snippet="Doctors who treated patients said the WHO had warned."
    )
    message = render_email(alert, sender=SENDER, to=TO, date=datetime.now(UTC))
    html = message.get_body(("html",)).get_content()
    assert html.count("WHO</strong>") == 1
    assert "who</strong>" not in html


def test_right_to_left_titles_and_snippets_take_their_own_direction() -> None:
    """A Hebrew or Arabic title and snippet are laid out right to left (the "!" of a
    Hebrew headline at its end, not at the line's start): dir="auto" on each, in the
    single alert and in the digest (looked at rendered by headless Chromium)."""
    title = "\u05e2\u05d3\u05db\u05d5\u05df: \u05d4\u05ea\u05e7\u05e6\u05d9\u05d1!"
    alert = make_alert(title=title, snippet=title)
    single = render_email(alert, sender=SENDER, to=TO, date=datetime.now(UTC))
    digest = render_digest_email(
        Digest("dg", "desk", (alert,)), sender=SENDER, to=TO, date=datetime.now(UTC)
    )
    for message in (single, digest):
        html = message.get_body(("html",)).get_content()
        assert html.count('dir="auto"') == 2  # the title's element and the snippet's


def test_an_outlet_without_a_title_keeps_its_link() -> None:
    """An "also" entry with a URL but no title links its outlet's name, as the text part
    gives its URL; it was plain text in the HTML."""
    also = (AlsoSeen(url="https://o4.example/4", feed="Outlet 4", title=""),)
    message = render_email(make_alert(also=also), sender=SENDER, to=TO, date=datetime.now(UTC))
    html = message.get_body(("html",)).get_content()
    assert (
        '<a href="https://o4.example/4" style="color:#0b57d0;text-decoration:none">Outlet 4</a>'
        in html
    )


async def test_non_ascii_text_arrives_intact(smtpd: tuple[Recorder, int]) -> None:
    """Cyrillic, accents and emoji in title and snippet survive encoding in subject and parts."""
    recorder, port = smtpd
    alert = make_alert(title="Посольство России в Анкаре 🇷🇺 — «déjà vu»", snippet="Россия ✓")
    assert (await notifier(port).send(alert)).outcome is Outcome.SENT
    msg = recorder.messages[0].message
    assert msg["Subject"].lstrip() == (
        "[newsmon] russia-embassy: Посольство России в Анкаре 🇷🇺 — «déjà vu»"
    )
    text, html = parts(msg)
    assert "Посольство России в Анкаре 🇷🇺 — «déjà vu»" in text
    assert "Россия ✓" in html


async def test_message_id_is_stable_across_attempts(smtpd: tuple[Recorder, int]) -> None:
    """Two sends of one delivery carry the same Message-ID; another delivery gets another."""
    recorder, port = smtpd
    email_notifier = notifier(port)
    await email_notifier.send(make_alert())
    await email_notifier.send(make_alert(title="Updated title", also=()))
    await email_notifier.send(make_alert(delivery_id="d-0002"))
    first, again, other = (r.message["Message-ID"] for r in recorder.messages)
    assert first == again
    assert first != other


async def test_login_then_send(
    smtpd: tuple[Recorder, int], caplog: pytest.LogCaptureFixture
) -> None:
    """With a username and password the notifier authenticates, then sends."""
    caplog.set_level(logging.DEBUG)
    recorder, port = smtpd
    result = await notifier(port, username="alerts", password=PASSWORD).send(make_alert())
    assert result.outcome is Outcome.SENT
    assert recorder.logins == [b"alerts"]
    assert len(recorder.messages) == 1
    assert_no_leak(PASSWORD, result, caplog, ignore=(SERVER_LOGGER,))


async def test_auth_failure_is_permanent(
    smtpd: tuple[Recorder, int], caplog: pytest.LogCaptureFixture
) -> None:
    """A 535 authentication failure is PERMANENT and the password is in no detail or log."""
    caplog.set_level(logging.DEBUG)
    recorder, port = smtpd
    result = await notifier(port, username="alerts", password="wrong-" + PASSWORD).send(
        make_alert()
    )
    assert result.outcome is Outcome.PERMANENT
    assert result.detail.startswith("authentication failed: 535")
    assert recorder.messages == []
    assert_no_leak(PASSWORD, result, caplog, ignore=(SERVER_LOGGER,))


async def test_starttls_required_but_not_offered_fails_closed(
    smtpd: tuple[Recorder, int], caplog: pytest.LogCaptureFixture
) -> None:
    """security="starttls" against a server without STARTTLS is PERMANENT and sends no AUTH."""
    caplog.set_level(logging.DEBUG)
    recorder, port = smtpd
    result = await notifier(port, security="starttls", username="alerts", password=PASSWORD).send(
        make_alert()
    )
    assert result.outcome is Outcome.PERMANENT
    assert "STARTTLS" in result.detail
    assert recorder.logins == []
    assert recorder.messages == []
    assert_no_leak(PASSWORD, result, caplog, ignore=(SERVER_LOGGER,))


async def test_a_short_password_is_masked_where_it_stands_alone(
    smtpd: tuple[Recorder, int],
) -> None:
    """A one-letter password is masked only where no letter or digit touches it: masked
    in every word, the answer read "<secret>TARTTL<secret>" and showed where its letters
    are."""
    _, port = smtpd
    result = await notifier(port, security="starttls", username="alerts", password="S").send(
        make_alert()
    )
    assert "STARTTLS" in result.detail
    assert "<secret>" not in result.detail


async def test_partial_refusal_is_sent_naming_the_refused(smtpd: tuple[Recorder, int]) -> None:
    """One recipient refused and one accepted is SENT, with the refused one named."""
    recorder, port = smtpd
    recorder.rcpt_answers["ops@example.org"] = "550 5.1.1 no such user"
    result = await notifier(port).send(make_alert())
    assert result.outcome is Outcome.SENT
    assert result.detail == (
        "sent to 1 of 2 recipients; refused: ops@example.org 550 5.1.1 no such user"
    )
    [received] = recorder.messages
    assert received.rcpt_tos == ["desk@example.org"]


@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        (("550 5.1.1 no such user", "553 5.1.3 bad address"), Outcome.PERMANENT),
        (("450 4.2.1 mailbox busy", "550 5.1.1 no such user"), Outcome.RETRY),
        (("451 4.3.0 try later", "451 4.3.0 try later"), Outcome.RETRY),
    ],
    ids=["all-5xx", "mixed", "all-4xx"],
)
async def test_all_recipients_refused(
    answers: tuple[str, str], outcome: Outcome, smtpd: tuple[Recorder, int]
) -> None:
    """Every recipient refused: 5xx only is PERMANENT, any 4xx is RETRY; both are named."""
    recorder, port = smtpd
    recorder.rcpt_answers = {"desk@example.org": answers[0], "ops@example.org": answers[1]}
    result = await notifier(port).send(make_alert())
    assert result.outcome is outcome
    assert result.detail.startswith("all recipients refused: desk@example.org ")
    assert "ops@example.org" in result.detail
    assert recorder.messages == []


async def test_temporary_failure_then_success(smtpd: tuple[Recorder, int]) -> None:
    """451 to DATA is RETRY; the next attempt is SENT with the same Message-ID."""
    recorder, port = smtpd
    recorder.data_answers.append("451 4.3.0 Temporary local problem")
    email_notifier = notifier(port)
    first = await email_notifier.send(make_alert())
    assert first.outcome is Outcome.RETRY
    assert first.detail == "message refused: 451 4.3.0 Temporary local problem"
    second = await email_notifier.send(make_alert())
    assert second.outcome is Outcome.SENT
    assert len(recorder.messages) == 1


async def test_data_refused_for_good_is_permanent(smtpd: tuple[Recorder, int]) -> None:
    """554 to DATA is PERMANENT."""
    recorder, port = smtpd
    recorder.data_answers.append("554 5.7.1 Message rejected as spam")
    result = await notifier(port).send(make_alert())
    assert result.outcome is Outcome.PERMANENT
    assert result.detail == "message refused: 554 5.7.1 Message rejected as spam"


async def test_connection_refused_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    """No server listening is RETRY."""
    caplog.set_level(logging.DEBUG)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
        port = sock.getsockname()[1]
        result = await notifier(port, username="alerts", password=PASSWORD).send(make_alert())
    assert result.outcome is Outcome.RETRY
    assert result.detail.startswith("could not connect")
    assert_no_leak(PASSWORD, result, caplog)


@dataclass
class ScriptedSMTP:
    """A minimal SMTP server for faults aiosmtpd cannot stage: it answers the dialogue
    until the step named by ``stop_after`` and then goes silent ("hang") or hangs up."""

    stop_after: str  # "greeting" or "data"
    then: str  # "hang" or "close"
    messages: list[bytes] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 scripted ESMTP\r\n")
            await writer.drain()
            if self.stop_after != "greeting":
                await self._dialogue(reader, writer)
            if self.then == "hang":
                await self.release.wait()
        finally:
            writer.close()

    async def _dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-scripted\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                # The message up to the final dot; then no reply (the RFC 1047 gap).
                self.messages.append(await reader.readuntil(b"\r\n.\r\n"))
                return
            else:
                writer.write(b"250 OK\r\n")
            await writer.drain()


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[list[ScriptedSMTP], int]]:
    """A scripted server on 127.0.0.1; the test appends the script to the list."""
    script: list[ScriptedSMTP] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await script[0].serve(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield script, server.sockets[0].getsockname()[1]
    finally:
        for s in script:
            s.release.set()
        server.close()
        await server.wait_closed()


async def test_server_hanging_after_greeting_times_out(
    scripted: tuple[list[ScriptedSMTP], int],
) -> None:
    """A server that greets and then never answers EHLO is RETRY after the timeout."""
    script, port = scripted
    script.append(ScriptedSMTP(stop_after="greeting", then="hang"))
    result = await notifier(port, timeout=0.3).send(make_alert())
    assert result.outcome is Outcome.RETRY
    assert result.detail == "timed out talking to the SMTP server"


async def test_connection_lost_after_final_dot_retries_with_same_message_id(
    scripted: tuple[list[ScriptedSMTP], int], smtpd: tuple[Recorder, int]
) -> None:
    """A hang-up between the final dot and the reply is RETRY; the retry has the same Message-ID."""
    script, port = scripted
    gap = ScriptedSMTP(stop_after="data", then="close")
    script.append(gap)
    result = await notifier(port).send(make_alert())
    assert result.outcome is Outcome.RETRY
    assert result.detail == "the SMTP server closed the connection"
    [lost] = gap.messages
    recorder, good_port = smtpd
    assert (await notifier(good_port).send(make_alert())).outcome is Outcome.SENT
    first = email.message_from_bytes(lost.removesuffix(b".\r\n"), policy=email.policy.default)
    assert first["Message-ID"] == recorder.messages[0].message["Message-ID"]


def test_rejects_an_unknown_security_mode() -> None:
    """A security mode other than starttls, tls or none is refused at construction."""
    with pytest.raises(ValueError, match="security"):
        notifier(25, security="ssl")  # type: ignore[arg-type]


@settings(max_examples=200)
@given(title=st.text(), rule=st.text(), delivery_id=st.text(min_size=1))
def test_no_title_adds_a_header(title: str, rule: str, delivery_id: str) -> None:
    """Whatever a title holds, the serialized message parses back to exactly our headers."""
    alert = make_alert(title=title, rule=rule, delivery_id=delivery_id)
    msg = render_email(alert, sender=SENDER, to=TO, date=datetime(2025, 2, 27, tzinfo=UTC))
    parsed = email.message_from_bytes(msg.as_bytes(policy=email.policy.SMTP))
    assert set(parsed.keys()) == EXPECTED_HEADERS
    subject = str(msg["Subject"])
    assert len(subject) <= 200
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in subject)
