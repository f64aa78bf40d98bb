"""The Slack channel against a real aiohttp server on 127.0.0.1 playing Slack's webhook."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.models import AlsoSeen, Outcome
from monitor.notify.slack import SlackNotifier, render_slack
from monitor.secrets import Secret
from tests.notify_servers import assert_no_leak, make_alert

# A distinctive token in the webhook path: it must never reach a detail or a log line.
TOKEN = "XOXB-SECRET-7f3a9c"
HOOK_PATH = f"/services/T0001/B0001/{TOKEN}"


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeSlack:
    """Slack's incoming webhook, scripted per test: answers in order, then 200 "ok"."""

    answers: list[Answer] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    hang: asyncio.Event | None = None  # when set, never answer until the event is set
    echo: bool = False  # answer 404 with the request path, like a misconfigured proxy

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(await request.json())
        self.content_types.append(request.content_type)
        if self.hang is not None:
            await self.hang.wait()
        if self.echo:
            return web.Response(status=404, text=f"no route for {request.path}")
        answer = self.answers.pop(0) if self.answers else Answer()
        return web.Response(status=answer.status, text=answer.body, headers=answer.headers)


@pytest.fixture
async def slack() -> AsyncIterator[tuple[FakeSlack, str]]:
    fake = FakeSlack()
    app = web.Application()
    app.router.add_post(HOOK_PATH, fake.handle)
    app.router.add_post("/moved", fake.handle)
    # The fake Slack's own access log would print the path: it is Slack's side, not ours.
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(access_log=None)
    try:
        yield fake, str(server.make_url(HOOK_PATH))
    finally:
        if fake.hang is not None:
            fake.hang.set()
        await server.close()


def notifier(url: str, session: aiohttp.ClientSession, timeout: float = 5.0) -> SlackNotifier:
    return SlackNotifier("desk-slack", Secret(url), session, timeout=timeout)


def all_texts(payload: dict[str, Any]) -> list[str]:
    """Every string in the payload that Slack would render as text."""
    out: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    out.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(payload)
    return out


# Slack's control sequences: <!channel>, <@U123>, <#C1>, <url|label>.
_TOKEN_RE = re.compile(r"<([^<>]*)>")


def slack_tokens(payload: dict[str, Any]) -> list[str]:
    """What Slack would parse as mentions or links, read the way Slack reads mrkdwn."""
    return [m.group(1) for text in all_texts(payload) for m in _TOKEN_RE.finditer(text)]


async def test_sends_fallback_text_and_blocks(
    slack: tuple[FakeSlack, str], session: aiohttp.ClientSession
) -> None:
    """A normal alert arrives as JSON with a text fallback, the expected blocks and no unfurling."""
    fake, url = slack
    result = await notifier(url, session).send(make_alert())
    assert result.outcome is Outcome.SENT
    [payload] = fake.received
    assert fake.content_types == ["application/json"]
    assert payload["unfurl_links"] is False
    assert payload["unfurl_media"] is False
    assert payload["text"].startswith("[newsmon] russia-embassy: Russia's embassy in Ankara")
    types = [b["type"] for b in payload["blocks"]]
    assert types == ["header", "section", "context", "section", "section", "section", "context"]
    title = payload["blocks"][1]["text"]["text"]
    assert title == (
        "*<https://www.example.org/news/2025/02/27/russia-embassy?utm=x&amp;page=2"
        "|Russia's embassy in Ankara says talks were useful>*"
    )
    texts = "\n".join(all_texts(payload))
    assert "Business Recorder (www.example.org)" in texts
    assert "2025-02-27 09:58 UTC" in texts
    assert "*Matched:* Russia, embassy" in texts
    assert "<https://news.example.net/world/ankara-talks|Example Net>" in texts
    assert "d-0001" in texts
    # Untrusted text never gets Slack's automatic link and mention parsing.
    for block in payload["blocks"]:
        for obj in [block.get("text"), *block.get("elements", [])]:
            if obj and obj["type"] == "mrkdwn":
                assert obj["verbatim"] is True


async def test_feed_text_can_neither_ping_nor_spoof_links(
    slack: tuple[FakeSlack, str], session: aiohttp.ClientSession
) -> None:
    """Mentions and links injected via title, snippet, feed, matched and also arrive escaped."""
    fake, url = slack
    alert = make_alert(
        title="<!channel> urgent <@U123> <https://evil.example|yourbank.com>",
        snippet="click <http://evil|click> now <!here> <!subteam^S1> <#C1>",
        feed="<!everyone> Feed",
        matched=("<!channel>", "embassy"),
        also=(AlsoSeen(url="https://ok.example/x", feed="<@U999>", title="<!here>"),),
    )
    result = await notifier(url, session).send(alert)
    assert result.outcome is Outcome.SENT
    [payload] = fake.received
    tokens = slack_tokens(payload)
    # The only tokens are the links we built, to the alert's own URLs, labelled with escaped text.
    assert [t.split("|")[0] for t in tokens] == [
        "https://www.example.org/news/2025/02/27/russia-embassy?utm=x&amp;page=2",
        "https://ok.example/x",
    ]
    for token in tokens:
        assert not token.startswith(("!", "@", "#"))
    texts = "\n".join(all_texts(payload))
    assert "&lt;!channel&gt; urgent &lt;@U123&gt;" in texts
    assert "&lt;http://evil|click&gt;" in texts
    assert "&lt;!everyone&gt; Feed" in texts


async def test_link_targets_are_percent_encoded(
    slack: tuple[FakeSlack, str], session: aiohttp.ClientSession
) -> None:
    """An article URL holding | < > or a space cannot end the link early or inject a label."""
    fake, url = slack
    alert = make_alert(url="https://example.org/a|b<c>d e?x=1&y=2", also=())
    await notifier(url, session).send(alert)
    title = fake.received[0]["blocks"][1]["text"]["text"]
    assert title.startswith("*<https://example.org/a%7Cb%3Cc%3Ed%20e?x=1&amp;y=2|")


@pytest.mark.parametrize(
    "bad_url", ["javascript:alert(1)", "data:text/html,x", "/relative", "ftp://x.example/"]
)
async def test_non_http_urls_are_not_linked(
    bad_url: str, slack: tuple[FakeSlack, str], session: aiohttp.ClientSession
) -> None:
    """Only http(s) URLs become links; anything else leaves the title as plain text."""
    fake, url = slack
    await notifier(url, session).send(make_alert(url=bad_url, also=()))
    payload = fake.received[0]
    assert slack_tokens(payload) == []
    assert bad_url not in json.dumps(payload)


async def test_huge_fields_are_truncated_within_slack_limits(
    slack: tuple[FakeSlack, str], session: aiohttp.ClientSession
) -> None:
    """A 100 KB title, 1 MB snippet and 200 other outlets stay inside Slack's size limits."""
    fake, url = slack
    alert = make_alert(
        rule="r" * 500,
        title="<&> " * 25_000,
        snippet="word&" * 200_000,
        feed="F" * 10_000,
        matched=tuple(f"term{i}" for i in range(2000)),
        also=tuple(
            AlsoSeen(f"https://e{i}.example/", f"<Feed {i}>", "t" * 500) for i in range(200)
        ),
    )
    result = await notifier(url, session).send(alert)
    assert result.outcome is Outcome.SENT
    [payload] = fake.received
    assert len(payload["blocks"]) <= 50
    assert len(payload["text"]) <= 40_000
    header = payload["blocks"][0]["text"]["text"]
    assert len(header) <= 150
    assert header.endswith("…")
    for block in payload["blocks"]:
        for obj in [block.get("text"), *block.get("elements", [])]:
            if obj:
                assert 1 <= len(obj["text"]) <= 3000
    for text in all_texts(payload):
        # No escape sequence is cut in half, so no stray '&' appears.
        assert not re.search(r"&(?!amp;|lt;|gt;)", text)
    texts = "\n".join(all_texts(payload))
    assert "…and " in texts  # the other outlets that did not fit are counted


# Slack's documented incoming-webhook errors (api.slack.com/messaging/webhooks#handling_errors).
PERMANENT_ERRORS = [
    (400, "invalid_payload"),
    (400, "user_not_found"),
    (400, "too_many_attachments"),
    (403, "action_prohibited"),
    (403, "invalid_token"),
    (403, "posting_to_general_channel_denied"),
    (404, "channel_not_found"),
    (404, "no_service"),
    (404, "team_disabled"),
    (410, "channel_is_archived"),
]


@pytest.mark.parametrize(("status", "code"), PERMANENT_ERRORS, ids=[c for _, c in PERMANENT_ERRORS])
async def test_slack_permanent_errors(
    status: int,
    code: str,
    slack: tuple[FakeSlack, str],
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each documented permanent Slack error is PERMANENT, names Slack's code and leaks no URL."""
    caplog.set_level(logging.DEBUG)
    fake, url = slack
    fake.answers.append(Answer(status, code))
    result = await notifier(url, session).send(make_alert())
    assert result.outcome is Outcome.PERMANENT
    assert result.detail == f"HTTP {status}: {code}"
    assert_no_leak(TOKEN, result, caplog)


async def test_rate_limited_is_retried_after_slacks_delay(
    slack: tuple[FakeSlack, str], session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """429 with Retry-After is RETRY carrying the delay Slack asked for."""
    caplog.set_level(logging.DEBUG)
    fake, url = slack
    fake.answers.append(Answer(429, "rate_limited", {"Retry-After": "30"}))
    result = await notifier(url, session).send(make_alert())
    assert result.outcome is Outcome.RETRY
    assert result.retry_after == 30.0
    assert "rate_limited" in result.detail
    assert_no_leak(TOKEN, result, caplog)


@pytest.mark.parametrize("status", [500, 502, 503, 408])
async def test_server_errors_are_retried(
    status: int,
    slack: tuple[FakeSlack, str],
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """5xx and 408 answers are RETRY, and the next attempt can succeed."""
    caplog.set_level(logging.DEBUG)
    fake, url = slack
    fake.answers.append(Answer(status, "internal_error"))
    slack_notifier = notifier(url, session)
    first = await slack_notifier.send(make_alert())
    assert first.outcome is Outcome.RETRY
    assert_no_leak(TOKEN, first, caplog)
    assert (await slack_notifier.send(make_alert())).outcome is Outcome.SENT


async def test_redirect_is_not_followed(
    slack: tuple[FakeSlack, str], session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A redirect is not followed (the message would go elsewhere) and is PERMANENT."""
    caplog.set_level(logging.DEBUG)
    fake, url = slack
    fake.answers.append(Answer(301, "", {"Location": "/moved"}))
    result = await notifier(url, session).send(make_alert())
    assert result.outcome is Outcome.PERMANENT
    assert len(fake.received) == 1
    assert_no_leak(TOKEN, result, caplog)


async def test_echoed_url_is_scrubbed_from_detail(
    slack: tuple[FakeSlack, str], session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that echoes the request path back cannot put the webhook token into the detail."""
    caplog.set_level(logging.DEBUG)
    fake, url = slack
    fake.echo = True
    result = await notifier(url, session).send(make_alert())
    assert result.outcome is Outcome.PERMANENT
    assert "<url>" in result.detail
    assert_no_leak(TOKEN, result, caplog)


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port bound but not listening on 127.0.0.1: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_connection_refused_is_retried(
    refusing_port: int, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Connection refused is RETRY and its detail names neither URL nor token."""
    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{refusing_port}{HOOK_PATH}"
    result = await notifier(url, session).send(make_alert())
    assert result.outcome is Outcome.RETRY
    assert result.detail.startswith("connection failed")
    assert_no_leak(TOKEN, result, caplog)


async def test_accepting_then_closing_is_retried(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that reads the whole request and closes without answering is RETRY."""
    caplog.set_level(logging.DEBUG)
    requests: list[bytes] = []

    async def read_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        requests.append(head + await reader.readexactly(length))
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(read_then_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await notifier(f"http://127.0.0.1:{port}{HOOK_PATH}", session).send(make_alert())
    finally:
        server.close()
        await server.wait_closed()
    assert result.outcome is Outcome.RETRY
    assert len(requests) == 1  # the message may have arrived: the documented duplicate window
    assert_no_leak(TOKEN, result, caplog)


async def test_no_answer_within_timeout_is_retried(
    slack: tuple[FakeSlack, str], session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A Slack that never answers hits the notifier's deadline and is RETRY."""
    caplog.set_level(logging.DEBUG)
    fake, url = slack
    fake.hang = asyncio.Event()
    result = await notifier(url, session, timeout=0.2).send(make_alert())
    assert result.outcome is Outcome.RETRY
    assert result.detail == "timed out waiting for Slack"
    assert_no_leak(TOKEN, result, caplog)


def test_render_is_pure_and_stable() -> None:
    """Rendering the same alert twice gives the same message (retries send the same text)."""
    assert render_slack(make_alert()) == render_slack(make_alert())


@settings(max_examples=200)
@given(title=st.text(), snippet=st.text(), feed=st.text(), word=st.text())
def test_no_feed_text_becomes_a_slack_token(title: str, snippet: str, feed: str, word: str) -> None:
    """Whatever Unicode or markup a feed sends, the only Slack tokens are our own links."""
    alert = make_alert(
        title=title,
        snippet=snippet,
        feed=feed,
        matched=(word,),
        also=(AlsoSeen("https://ok.example/x", feed, title),),
    )
    payload = render_slack(alert)
    json.dumps(payload, ensure_ascii=True)  # serializable: no lone surrogate survives
    for token in slack_tokens(payload):
        target = token.split("|", 1)[0]
        assert target in (
            "https://www.example.org/news/2025/02/27/russia-embassy?utm=x&amp;page=2",
            "https://ok.example/x",
        )
    for block in payload["blocks"]:
        for obj in [block.get("text"), *block.get("elements", [])]:
            if obj:
                assert 1 <= len(obj["text"]) <= 3000
