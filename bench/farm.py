"""A local feed farm: N feeds of M items on loopback, in a process of its own.

    python -m bench.farm --feeds 200 --items 50 --hosts 4

Feed ``i`` is served at ``http://127.0.0.{1 + i % hosts}:PORT/feed/i.xml`` (one port per
address) as RSS 2.0 with ETag and Last-Modified; a request carrying the current
validator gets 304 (``?items=N`` serves only the N newest items; ``?links=0`` items
without links, which newsmon matches on the feed's own text, fetching no page). Its
articles are served from the same host and port, so newsmon's address guard trusts them
as the feed's own origin. Pages are the corpus articles
(../shared/corpus/articles) when present, generated otherwise; each item's description is
60 words drawn from its page.

With ``new = k`` (set by ``GET /reset?new=k``), every request after a feed's first moves
that feed on by k new items, as a busy publisher would between polls. New items carry the
word "zebra" in their title, and the farm notes when each was first served, so that
``POST /hook`` (a webhook receiver) can report poll-to-webhook latency at ``GET /stats``.

The server is a bare asyncio protocol, not aiohttp: on two cores the farm must cost the
clients it serves as little CPU as possible. Prints one JSON line (the addresses) when
ready; runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "articles"
REASONS = {200: "OK", 304: "Not Modified", 404: "Not Found", 400: "Bad Request"}
MAX_HEAD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Page:
    title: str
    words: list[str]  # the story's words, which item summaries are drawn from
    html: bytes


def load_pages(directory: Path, count: int = 64) -> list[Page]:
    """Corpus pages with their ground-truth text, or ``count`` generated ones."""
    pages = []
    for html in sorted(directory.glob("*.html")) if directory.is_dir() else []:
        text = html.with_suffix(".txt")
        if text.exists():
            words = text.read_text(encoding="utf-8").split()
            pages.append(Page(" ".join(words[:10]), words, html.read_bytes()))
    if pages:
        return pages
    vocab = ["market", "talks", "embassy", "election", "storm", "court", "river", "budget"]
    for n in range(count):
        words = [vocab[(n * 7 + k * 3) % len(vocab)] for k in range(400)]
        body = "".join(f"<p>{' '.join(words[k : k + 40])}.</p>" for k in range(0, 400, 40))
        html = f"<html><head><title>Story {n}</title></head><body><article>{body}</article>"
        pages.append(Page(f"Story {n}", words, html.encode()))
    return pages


@dataclass
class Feed:
    requests: int = 0
    cached: tuple[int, bytes, str, str] | None = None  # generation, body, etag, last-modified
    # item number -> its XML: an item never changes, and rendering all 50 for every
    # request of an incremental run cost the farm 1.4 ms of CPU a poll, which the client
    # polling fastest paid most for on a 2-core machine
    items: dict[int, str] = field(default_factory=dict)


@dataclass
class Farm:
    feeds: int
    items: int
    pages: list[Page]
    start: float = field(default_factory=time.time)
    new: int = 0
    state: list[Feed] = field(default_factory=list)
    served: dict[str, float] = field(default_factory=dict)  # new item URL -> first served
    hooked: dict[str, float] = field(default_factory=dict)  # item URL -> webhook arrival
    hosts: list[tuple[str, int]] = field(default_factory=list)

    def reset(self, new: int) -> None:
        self.new = new
        self.start = time.time()
        self.state = [Feed() for _ in range(self.feeds)]
        self.served.clear()
        self.hooked.clear()

    def base(self, i: int) -> str:
        host, port = self.hosts[i % len(self.hosts)]
        return f"http://{host}:{port}"

    def page(self, i: int, n: int) -> Page:
        return self.pages[(i * 7919 + n) % len(self.pages)]

    def summary(self, i: int, n: int) -> str:
        """60 words drawn from the item's page: every item a story of its own, so story
        clustering finds no false copies (pages repeat across the farm; stories must not)."""
        words = self.page(i, n).words
        return " ".join(random.Random(i * 1_000_003 + n).choices(words, k=60))

    def item(self, i: int, n: int, links: bool = True) -> str:
        page = self.page(i, n)
        title = f"{page.title} zebra {n}" if n >= self.items else page.title
        published = self.start - (self.items - n) * 60
        link = f"<link>{self.base(i)}/a/{i}/{n}.html</link>" if links else ""
        return (
            f"<item><title>{escape(title)}</title>{link}"
            f"<guid isPermaLink='false'>urn:farm:{i}:{n}</guid>"
            f"<pubDate>{formatdate(published, usegmt=True)}</pubDate>"
            f"<description>{escape(self.summary(i, n))}</description></item>"
        )

    def render(
        self, i: int, generation: int, limit: int, links: bool = True
    ) -> tuple[bytes, str, str]:
        top = generation * self.new + self.items  # items 0 .. top-1 exist; newest first
        base = self.base(i)
        shown = range(top - 1, max(top - limit, 0) - 1, -1)
        if not links:  # the memory scenario's: small feeds, served once or 304
            parts = [self.item(i, n, links=False) for n in shown]
        else:
            known = self.state[i].items
            parts = [known.get(n) or known.setdefault(n, self.item(i, n)) for n in shown]
            for n in [n for n in known if n < shown.stop + 1]:
                del known[n]  # fallen out of every window still to come
        body = (
            "<?xml version='1.0' encoding='utf-8'?>\n<rss version='2.0'><channel>"
            f"<title>Farm feed {i}</title><link>{base}/</link><description>bench</description>"
            + "".join(parts)
            + "</channel></rss>"
        ).encode()
        modified = formatdate(self.start + generation, usegmt=True)
        return body, f'"{i}-{generation}"', modified

    def feed(
        self, i: int, headers: dict[str, str], limit: int, links: bool = True
    ) -> tuple[int, bytes, list[str]]:
        feed = self.state[i]
        generation = feed.requests * (self.new > 0)  # the first request sees generation 0
        feed.requests += 1
        usual = limit == self.items and links
        if usual and feed.cached and feed.cached[0] == generation:
            _, body, etag, modified = feed.cached
        else:
            body, etag, modified = self.render(i, generation, limit, links)
            if usual:
                feed.cached = (generation, body, etag, modified)
        extra = [f"ETag: {etag}", f"Last-Modified: {modified}"]
        if headers.get("if-none-match") == etag or (
            "if-none-match" not in headers and headers.get("if-modified-since") == modified
        ):
            return 304, b"", extra
        if generation:
            now, base = time.time(), self.base(i)
            first = generation * self.new + self.items - self.new
            for n in range(first, first + self.new):
                self.served.setdefault(f"{base}/a/{i}/{n}.html", now)
        return 200, body, [*extra, "Content-Type: application/rss+xml; charset=utf-8"]

    def stats(self) -> dict[str, object]:
        latencies = sorted(t - self.served[u] for u, t in self.hooked.items() if u in self.served)
        return {"requests": sum(f.requests for f in self.state), "latencies": latencies}


class Http(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, enough for GETs, one POST body and no pipelining."""

    def __init__(self, farm: Farm) -> None:
        self.farm = farm
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, target, *_ = [*head[0].split(" "), "", ""]
            self.answer(*self.route(method, target, headers, body))
        if len(self.buffer) > MAX_HEAD:
            self.answer(400, b"", [])

    def route(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, list[str]]:
        farm = self.farm
        url = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        try:
            if parts[0] == "feed" and method == "GET":
                i = int(parts[1].removesuffix(".xml"))
                limit, links = int(query.get("items", farm.items)), query.get("links") != "0"
                return farm.feed(i, headers, limit, links)
            if parts[0] == "a" and method == "GET":
                page = farm.page(int(parts[1]), int(parts[2].removesuffix(".html")))
                return 200, page.html, ["Content-Type: text/html; charset=utf-8"]
            if parts[0] == "hook" and method == "POST":
                alert = json.loads(body)
                for hit in alert.get("hits", [alert]):  # a digest, or one alert
                    farm.hooked.setdefault(hit["url"], time.time())
                return 200, b"{}", ["Content-Type: application/json"]
            if parts[0] == "reset":
                farm.reset(int(query.get("new", 0)))
                return 200, b"{}", ["Content-Type: application/json"]
            if parts[0] == "stats":
                stats = json.dumps(farm.stats()).encode()
                return 200, stats, ["Content-Type: application/json"]
        except (IndexError, ValueError, KeyError):
            return 400, b"", []
        return 404, b"", []

    def answer(self, status: int, body: bytes, extra: list[str]) -> None:
        head = "\r\n".join(
            [f"HTTP/1.1 {status} {REASONS[status]}", f"Content-Length: {len(body)}", *extra]
        )
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head.encode() + b"\r\n\r\n" + body)


async def serve(feeds: int, items: int, hosts: int) -> None:
    farm = Farm(feeds, items, load_pages(CORPUS))
    farm.reset(0)
    loop = asyncio.get_running_loop()
    for h in range(hosts):
        address = f"127.0.0.{h + 1}"
        server = await loop.create_server(lambda: Http(farm), address, 0, backlog=1024)
        farm.hosts.append((address, server.sockets[0].getsockname()[1]))
    ready = {"hosts": farm.hosts, "feeds": feeds, "items": items, "pages": len(farm.pages)}
    print(json.dumps(ready), flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=4, help="loopback addresses 127.0.0.1..K")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.feeds, args.items, args.hosts))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
