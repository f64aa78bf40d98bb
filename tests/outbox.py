"""Helpers for the outbox tests: a manual clock, a scripted webhook receiver, and a way
to put many hits in the store without polling.

Not a conftest; the delivery tests import it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from monitor.models import BodyStatus, Entry, MatchedTerm, RuleMatch, Story
from monitor.store import Store, first_cursor
from tests.servers import Recorder


class ManualClock:
    """Time that moves only when told; ``sleep`` moves it instead of waiting."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until ``release``): a destination that times out
    echo: bool = False  # answer with the request's path and headers, as some servers do


@dataclass
class Seen:
    delivery: str
    body: dict[str, object]
    headers: dict[str, str]
    at: float  # the test clock when it arrived


class Hook(Recorder):
    """A webhook receiver answering from a script of ``Answer``s, then 200 forever;
    records every request with the test clock's time."""

    shutdown_timeout = 0.1  # a hanging answer is released by stop()

    def __init__(self, script: Sequence[Answer] = (), clock: Callable[[], float] = float) -> None:
        super().__init__()
        self.script = list(script)
        self.clock = clock
        self.seen: list[Seen] = []
        self.accepted: list[Seen] = []
        self.release = asyncio.Event()

    @property
    def url(self) -> str:
        return f"{self.base}/hook/t0k3n-in-the-path"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        got = Seen(
            request.headers.get("X-Newsmon-Delivery", ""),
            json.loads(raw),
            dict(request.headers),
            self.clock(),
        )
        answer = self.script.pop(0) if self.script else Answer()
        async with self._changed:
            self.seen.append(got)
            self._changed.notify_all()
        if answer.hang:
            await self.release.wait()
        async with self._changed:
            if answer.status < 300:
                self.accepted.append(got)
            self._changed.notify_all()
        text = f"{request.path_qs} {dict(request.headers)}" if answer.echo else "answer"
        return web.Response(status=answer.status, headers=answer.headers, text=text)

    def _route(self, router: web.UrlDispatcher) -> None:
        router.add_post("/hook/{token}", self._handle)

    async def stop(self) -> None:
        self.release.set()
        await super().stop()


FEED = "http://127.0.0.1:9/wire.xml"  # never fetched: the hits are written directly


async def add_hits(
    store: Store,
    count: int,
    destinations: Sequence[str],
    now: float,
    *,
    start: int = 0,
    snippet: str = "Russia's embassy said the talks were useful.",
) -> None:
    """Store ``count`` matching stories for rule "r" in one poll transaction, as the
    pipeline would, with one pending delivery per destination; titles are "story N"."""
    await store.sync_feeds({FEED: "Wire"}, now, 0.0)
    feed = await store.feed_state(FEED)
    published = datetime.fromtimestamp(now, UTC)
    stories = [
        Story(
            entry=Entry(
                key=f"k{i}",
                url=f"https://news.example.org/{i}",
                title=f"story {i}",
                summary="",
                content="",
                published=published,
            ),
            story_key=f"https://news.example.org/{i}",
            body="",
            body_status=BodyStatus.DISABLED,
            matches=(RuleMatch("r", (MatchedTerm("Russia", "title", 0, 6),), snippet),),
            alertable=True,
        )
        for i in range(start, start + count)
    ]
    await store.commit_poll(
        feed, now=now, next_poll_at=now + 600, cursor=first_cursor(feed),
        title="Wire", stories=stories, destinations={"r": list(destinations)},
    )  # fmt: skip


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 20.0) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.01)
