"""Hostile publishers (RELIABILITY.md B): each fails cleanly, within its deadline, and
never holds up the fetches running beside it."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from monitor.errors import FetchError
from monitor.fetch import Fetcher
from monitor.models import Fetched
from tests.hostile import LOGIN_PAGE, Hostile, bomb, running
from tests.servers import Item, Publisher

DEADLINE = 0.5
CAP = 1 << 20


@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    server = Hostile()
    server.redirects = {"/loop-a": "/loop-b", "/loop-b": "/loop-a"}
    for encoding in ("gzip", "deflate"):
        bomb(encoding, server.bomb_size)  # built ahead (and cached), not inside a deadline
    async with running(server):
        yield server


async def fetch(fetcher: Fetcher, url: str, max_bytes: int = CAP) -> Fetched:
    """A fetch of a URL the operator chose (its own origin is trusted)."""
    return await fetcher.get(url, max_bytes=max_bytes, trusted_origin=url)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param("/drip", "timeout", id="slow-drip"),
        pytest.param("/hang", "timeout", id="accepts-never-answers"),
        pytest.param("/gzip-bomb", "too_large", id="gzip-bomb"),
        pytest.param("/deflate-bomb", "too_large", id="deflate-bomb"),
        pytest.param("/endless", "too_large", id="endless-chunked-body"),
        pytest.param("/huge-length", "too_large", id="content-length-5GB"),
        pytest.param("/loop-a", "redirects", id="redirect-loop"),
        pytest.param("/long-header", "protocol", id="100KB-header-line"),
        pytest.param("/many-headers", "protocol", id="10000-headers"),
        pytest.param("/truncated", "payload", id="truncated-body"),
    ],
)
async def test_hostile_answer_fails_cleanly_beside_a_normal_fetch(
    session: aiohttp.ClientSession,
    hostile: Hostile,
    publisher: Publisher,
    path: str,
    reason: str,
) -> None:
    """A hostile answer ends in a FetchError with its own reason within the deadline, while
    a normal feed fetched at the same time arrives whole."""
    publisher.rss_items = [Item("Calm news", "/calm", "Nothing happened.")]
    fetcher = Fetcher(session, timeout=DEADLINE, concurrency=4, per_host=2)
    started = time.monotonic()
    bad, good = await asyncio.gather(
        fetch(fetcher, hostile.base + path),
        fetch(fetcher, publisher.base + "/rss.xml"),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - started
    assert isinstance(bad, FetchError), bad
    assert bad.reason == reason, bad
    assert isinstance(good, Fetched), good
    assert good.status == 200
    assert b"Calm news" in good.body
    assert elapsed < DEADLINE + 2.0  # the deadline holds, give or take a loaded machine
    if reason == "timeout":
        assert elapsed >= DEADLINE


async def test_redirect_loop_stops_after_five_hops(
    session: aiohttp.ClientSession, hostile: Hostile
) -> None:
    """A redirect loop is followed exactly five times (six requests), then refused."""
    fetcher = Fetcher(session, timeout=5.0, concurrency=4, per_host=2)
    with pytest.raises(FetchError, match="more than 5 redirects"):
        await fetch(fetcher, hostile.base + "/loop-a")
    assert [r.target for r in hostile.requests] == ["/loop-a", "/loop-b"] * 3


async def test_five_redirects_are_followed(
    session: aiohttp.ClientSession, hostile: Hostile
) -> None:
    """A chain of exactly five redirects still arrives, at the last hop's URL."""
    hostile.redirects = {f"/r{i}": f"/r{i + 1}" for i in range(5)}
    fetcher = Fetcher(session, timeout=5.0, concurrency=4, per_host=2)
    got = await fetch(fetcher, hostile.base + "/r0")
    assert (got.status, got.body, got.url) == (200, b"hello", hostile.base + "/r5")


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        pytest.param("/html", LOGIN_PAGE, "text/html", id="html-served-as-feed"),
        pytest.param("/empty", b"", "application/rss+xml", id="empty-body"),
    ],
)
async def test_odd_but_whole_answers_are_fetched(
    session: aiohttp.ClientSession, hostile: Hostile, path: str, body: bytes, content_type: str
) -> None:
    """HTML where a feed was expected, or an empty 200, is a complete answer for the fetch
    layer: it arrives as is, and judging it is the parser's business."""
    fetcher = Fetcher(session, timeout=5.0, concurrency=4, per_host=2)
    got = await fetch(fetcher, hostile.base + path)
    assert (got.status, got.body) == (200, body)
    assert got.headers["content-type"] == content_type


@pytest.mark.parametrize("path", ["/drip", "/hang"])
async def test_a_stalled_fetch_holds_up_no_other_host(
    session: aiohttp.ClientSession, publisher: Publisher, path: str
) -> None:
    """While one fetch stalls on a dripping or silent server, another host's feed is
    fetched to the end, through the same fetcher, with one slot per host."""
    stalling = Hostile("127.0.0.2")
    async with running(stalling):
        fetcher = Fetcher(session, timeout=60.0, concurrency=2, per_host=1)
        stalled = asyncio.create_task(fetch(fetcher, stalling.base + path))
        await asyncio.wait_for(stalling.seen.wait(), 10)
        good = await fetch(fetcher, publisher.base + "/rss.xml")
        assert good.status == 200
        assert not stalled.done()
        stalled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stalled


@pytest.mark.parametrize(
    ("concurrency", "per_host", "same_host"),
    [
        pytest.param(4, 1, True, id="per-host"),
        pytest.param(1, 4, False, id="global"),
    ],
)
async def test_limits_queue_fetches_beyond_them(
    session: aiohttp.ClientSession,
    publisher: Publisher,
    concurrency: int,
    per_host: int,
    same_host: bool,
) -> None:
    """A fetch beyond the per-host or the global limit waits, unconnected, until a slot
    frees; then it runs."""
    first, other = Hostile("127.0.0.2"), Hostile("127.0.0.3")
    async with running(first, other):
        second_server = first if same_host else other
        fetcher = Fetcher(session, timeout=60.0, concurrency=concurrency, per_host=per_host)
        stalled = asyncio.create_task(fetch(fetcher, first.base + "/hang"))
        await asyncio.wait_for(first.seen.wait(), 10)
        queued = asyncio.create_task(fetch(fetcher, second_server.base + "/ok"))
        # A whole fetch elsewhere, on a fetcher of its own, lets the queued one run if it could.
        side = Fetcher(session, timeout=60.0, concurrency=1, per_host=1)
        assert (await fetch(side, publisher.base + "/rss.xml")).status == 200
        assert not queued.done()
        assert [r.target for r in first.requests + other.requests] == ["/hang"]
        first.release.set()  # the silent server hangs up: the stalled fetch ends, a slot frees
        with pytest.raises(FetchError):
            await stalled
        assert (await queued).body == b"hello"


async def test_gzip_bomb_is_cut_at_the_cap_in_bounded_memory(
    session: aiohttp.ClientSession, hostile: Hostile
) -> None:
    """A 64 MiB gzip bomb is aborted at a 1 MiB decoded cap without inflating it whole."""
    fetcher = Fetcher(session, timeout=10.0, concurrency=4, per_host=2)
    tracemalloc.start()
    try:
        with pytest.raises(FetchError, match="cap") as caught:
            await fetch(fetcher, hostile.base + "/gzip-bomb")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.reason == "too_large"
    assert peak < 16 * CAP, f"peak {peak} bytes"


@pytest.mark.slow
async def test_gigabyte_gzip_bomb_stays_under_fifty_megabytes(
    session: aiohttp.ClientSession, hostile: Hostile
) -> None:
    """RELIABILITY.md 13 at full scale: 1 GiB in ~1 MB of gzip, the 10 MiB feed cap, and
    less than 50 MB allocated at the peak."""
    hostile.bomb_size = 1 << 30
    assert len(bomb("gzip", hostile.bomb_size)) < 2 << 20
    fetcher = Fetcher(session, timeout=60.0, concurrency=4, per_host=2)
    tracemalloc.start()
    try:
        with pytest.raises(FetchError, match="cap"):
            await fetch(fetcher, hostile.base + "/gzip-bomb", max_bytes=10 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20, f"peak {peak} bytes"


async def test_only_gzip_and_deflate_are_advertised(
    session: aiohttp.ClientSession, hostile: Hostile
) -> None:
    """Accept-Encoding names only codings whose decoded size the cap bounds (no br)."""
    fetcher = Fetcher(session, timeout=5.0, concurrency=4, per_host=2)
    await fetch(fetcher, hostile.base + "/ok")
    assert hostile.requests[0].headers["accept-encoding"] == "gzip, deflate"


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A loopback port whose accept queue is full, so the kernel drops new SYNs: a server
    that never accepts."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        with contextlib.ExitStack() as stack:
            for _ in range(2):  # Linux queues backlog + 1 connections
                filler = stack.enter_context(socket.socket())
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            yield port


async def test_a_server_that_never_accepts_hits_the_connect_timeout(
    session: aiohttp.ClientSession,
) -> None:
    """SYNs dropped (a full accept queue): the connect timeout ends the attempt, well before
    the total deadline (RELIABILITY.md 16)."""
    fetcher = Fetcher(session, timeout=30.0, concurrency=4, per_host=2, connect_timeout=DEADLINE)
    started = time.monotonic()
    with full_backlog() as port, pytest.raises(FetchError) as caught:
        await fetch(fetcher, f"http://127.0.0.1:{port}/")
    assert caught.value.reason == "connect_timeout"
    assert DEADLINE <= time.monotonic() - started < DEADLINE + 2.0


async def test_a_doubly_gzipped_bomb_is_not_inflated_twice(
    session: aiohttp.ClientSession, hostile: Hostile
) -> None:
    """Content-Encoding "gzip, gzip": one layer is decoded and the inner bomb arrives still
    compressed, a few hundred bytes for the parser to reject, never 64 MiB."""
    fetcher = Fetcher(session, timeout=5.0, concurrency=4, per_host=2)
    got = await fetch(fetcher, hostile.base + "/double-gzip-bomb")
    assert got.body.startswith(b"\x1f\x8b")  # still gzip
    assert len(got.body) < 64 << 10
