"""Real local servers for tests: a publisher (feeds and article pages) and alert receivers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Self
from xml.sax.saxutils import escape

from aiohttp import web


@dataclass
class Item:
    title: str
    path: str  # article page path on the publisher
    body: str = ""  # article page text; empty: the page 404s
    summary: str = ""
    content: str = ""  # the feed's own full text (RSS content:encoded), HTML
    guid: str | None = None
    canonical: str | None = None  # the page's <link rel="canonical">, a path on the publisher
    published: datetime | None = field(default_factory=lambda: datetime.now(UTC))


def article_html(title: str, body: str, canonical: str | None = None) -> str:
    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in body.split("\n\n"))
    link = f"<link rel='canonical' href='{escape(canonical)}'>" if canonical else ""
    return (
        f"<!doctype html><html><head><title>{escape(title)}</title>{link}</head><body>"
        "<nav><a href='/'>Home</a> <a href='/world'>World</a> <a href='/sport'>Sport</a></nav>"
        f"<article><h1>{escape(title)}</h1>{paragraphs}</article>"
        "<footer>Copyright The Test Gazette</footer></body></html>"
    )


def rss(base: str, items: list[Item], title: str = "Test Gazette") -> str:
    parts = []
    for it in items:
        guid = f"<guid isPermaLink='false'>{escape(it.guid)}</guid>" if it.guid else ""
        date = f"<pubDate>{format_datetime(it.published)}</pubDate>" if it.published else ""
        content = f"<content:encoded>{escape(it.content)}</content:encoded>" if it.content else ""
        parts.append(
            f"<item><title>{escape(it.title)}</title><link>{base}{it.path}</link>{guid}{date}"
            f"<description>{escape(it.summary)}</description>{content}</item>"
        )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'"
        " xmlns:content='http://purl.org/rss/1.0/modules/content/'><channel>"
        f"<title>{escape(title)}</title><link>{base}/</link><description>news</description>"
        + "".join(parts)
        + "</channel></rss>"
    )


def atom(base: str, items: list[Item], title: str = "Test Atom Wire") -> str:
    parts = []
    for it in items:
        stamp = (it.published or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        parts.append(
            f"<entry><title>{escape(it.title)}</title><link href='{base}{it.path}'/>"
            f"<id>{escape(it.guid or base + it.path)}</id><updated>{stamp}</updated>"
            f"<summary>{escape(it.summary)}</summary></entry>"
        )
    return (
        "<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
        f"<title>{escape(title)}</title><id>{base}/atom</id><updated>2025-01-01T00:00:00Z</updated>"
        + "".join(parts)
        + "</feed>"
    )


class LocalServer:
    """An aiohttp app on a free port of 127.0.0.1; ``start``/``stop``, or ``async with``."""

    # How long stop() lets a handler still running finish (aiohttp's default).
    shutdown_timeout = 60.0

    def __init__(self) -> None:
        self.base = ""
        self._runner: web.AppRunner | None = None

    def _route(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application()
        self._route(app.router)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=self.shutdown_timeout)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class Recorder(LocalServer):
    """A LocalServer whose handlers record under ``_changed``, so a test can wait for
    what it records instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = asyncio.Condition()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)


class Publisher(LocalServer):
    """Serves /rss.xml and /atom.xml with ETag and Last-Modified, and article pages.

    Records every request (path and headers) so tests can check what newsmon sent.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rss_items: list[Item] = []
        self.atom_items: list[Item] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        # path -> (status, headers): answer this instead of the normal content
        self.overrides: dict[str, tuple[int, dict[str, str]]] = {}
        self.pages: dict[str, tuple[str, bytes]] = {}  # path -> (content type, body) as is
        self.extra_headers: dict[str, str] = {}
        self.redirects: dict[str, tuple[int, str]] = {}  # path -> (status, location path)
        self.failures: dict[str, int] = {}  # path -> how many more times to answer 503
        self.relative_links = False  # entries link to their pages by path alone

    def _page(self, path: str) -> Item | None:
        return next((i for i in self.rss_items + self.atom_items if i.path == path), None)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path_qs, dict(request.headers)))
        if self.failures.get(request.path):
            self.failures[request.path] -= 1
            return web.Response(status=503, text="busy")
        if request.path in self.redirects:
            status, location = self.redirects[request.path]
            return web.Response(status=status, headers={"Location": location})
        if request.path in self.overrides:
            status, headers = self.overrides[request.path]
            return web.Response(status=status, headers=headers, text="no")
        if request.path in self.pages:
            kind, body = self.pages[request.path]
            return web.Response(body=body, headers={"Content-Type": kind})
        if request.path in ("/rss.xml", "/atom.xml"):
            base = "" if self.relative_links else self.base
            if request.path == "/rss.xml":
                text, kind = rss(base, self.rss_items), "application/rss+xml"
            else:
                text, kind = atom(base, self.atom_items), "application/atom+xml"
            etag = f'"{abs(hash(text))}"'
            modified = "Wed, 01 Jan 2025 00:00:00 GMT"
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            return web.Response(
                text=text,
                content_type=kind,
                headers={"ETag": etag, "Last-Modified": modified, **self.extra_headers},
            )
        item = self._page(request.path)
        if item is None or not item.body:
            raise web.HTTPNotFound()
        canonical = self.base + item.canonical if item.canonical else None
        return web.Response(
            text=article_html(item.title, item.body, canonical), content_type="text/html"
        )

    def hits(self, path: str) -> list[dict[str, str]]:
        """Headers of each request for ``path``."""
        return [h for p, h in self.requests if p == path]

    def _route(self, router: web.UrlDispatcher) -> None:
        router.add_route("GET", "/{tail:.*}", self._handle)


@dataclass
class Received:
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]


class Receiver(Recorder):
    """A webhook receiver that answers from a script of statuses, then 200 forever.

    ``accepted`` holds what it answered 2xx to; ``attempts`` everything it saw.
    """

    def __init__(self, script: list[int] | None = None) -> None:
        super().__init__()
        self.script = list(script or [])
        self.attempts: list[Received] = []
        self.accepted: list[Received] = []

    @property
    def url(self) -> str:
        return f"{self.base}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        got = Received(json.loads(raw), raw, dict(request.headers))
        status = self.script.pop(0) if self.script else 200
        async with self._changed:
            self.attempts.append(got)
            if status < 300:
                self.accepted.append(got)
            self._changed.notify_all()
        return web.Response(status=status, text="ok" if status < 300 else "nope")

    def _route(self, router: web.UrlDispatcher) -> None:
        router.add_post("/hook", self._handle)
