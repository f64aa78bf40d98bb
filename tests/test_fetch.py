"""The fetch layer's ordinary duties: conditional GET, answers as values, errors with
reasons, and the watchlist keys that shape it."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.config import load_config
from monitor.errors import ConfigError, FetchError
from monitor.fetch import Fetcher, make_session
from tests.hostile import self_signed
from tests.servers import Item, Publisher

CAP = 1 << 20
FEED_TABLE = """
[[feeds]]
url = "https://example.org/feed.xml"
"""


@contextlib.asynccontextmanager
async def serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 answering every GET with ``handler``; yields its base."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def socket_bound() -> Iterator[int]:
    """A loopback port held but not listening: connecting there is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    s = make_session(user_agent="newsmon-test/1")
    yield s
    await s.close()


@pytest.fixture
async def fetcher(session: aiohttp.ClientSession) -> Fetcher:
    return Fetcher(session, timeout=5.0, concurrency=4, per_host=2)


async def test_conditional_get_sends_validators_verbatim_and_returns_304(
    fetcher: Fetcher, publisher: Publisher
) -> None:
    """The stored ETag goes back as sent; a 304 is a value with an empty body."""
    publisher.rss_items = [Item("One", "/one", "Body.")]
    feed = publisher.base + "/rss.xml"
    first = await fetcher.get(feed, max_bytes=CAP, trusted_origin=feed)
    assert first.status == 200
    assert first.etag is not None
    assert first.last_modified == "Wed, 01 Jan 2025 00:00:00 GMT"
    validators = {"If-None-Match": first.etag, "If-Modified-Since": first.last_modified}
    second = await fetcher.get(feed, max_bytes=CAP, headers=validators, trusted_origin=feed)
    assert (second.status, second.body) == (304, b"")
    sent = publisher.hits("/rss.xml")[1]
    assert sent["If-None-Match"] == first.etag
    assert sent["User-Agent"] == "newsmon-test/1"


async def test_answer_headers_come_back_lower_cased(fetcher: Fetcher) -> None:
    """Retry-After, Cache-Control and Expires reach the caller under lower-case names."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            text="<rss/>",
            headers={"Retry-After": "120", "Cache-Control": "max-age=60", "Expires": "0"},
        )

    async with serve(handler) as base:
        got = await fetcher.get(base + "/", max_bytes=CAP, trusted_origin=base)
    assert got.headers["retry-after"] == "120"
    assert got.headers["cache-control"] == "max-age=60"
    assert got.headers["expires"] == "0"


async def test_refusals_by_status_type_and_size(fetcher: Fetcher, publisher: Publisher) -> None:
    """A 404 carries its status; a page of the wrong type or a declared size over the
    cap is refused before its body is read."""
    with pytest.raises(FetchError) as caught:
        await fetcher.get(publisher.base + "/missing", max_bytes=CAP, trusted_origin=publisher.base)
    assert (caught.value.reason, caught.value.status) == ("http_404", 404)
    feed = publisher.base + "/rss.xml"
    with pytest.raises(FetchError) as caught:
        await fetcher.get(feed, max_bytes=CAP, accept_body=("text/html",), trusted_origin=feed)
    assert caught.value.reason == "not_html"
    with pytest.raises(FetchError) as caught:
        await fetcher.get(feed, max_bytes=10, trusted_origin=feed)
    assert caught.value.reason == "too_large"


async def test_a_closed_port_is_a_connect_error(fetcher: Fetcher) -> None:
    """Nothing listening: FetchError("connect"), not an aiohttp exception."""
    with socket_bound() as port:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(FetchError) as caught:
            await fetcher.get(url, max_bytes=CAP, trusted_origin=url)
    assert caught.value.reason == "connect"


async def test_an_untrusted_certificate_fails_closed(fetcher: Fetcher, tmp_path: Path) -> None:
    """A self-signed certificate is refused as "tls", with no insecure retry
    (RELIABILITY.md 19)."""
    context, _ = self_signed(tmp_path, "127.0.0.1")
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(text="secret page")

    async with serve(handler, ssl_context=context) as base:
        url = base.replace("http://", "https://") + "/"
        with pytest.raises(FetchError) as caught:
            await fetcher.get(url, max_bytes=CAP, trusted_origin=url)
    assert caught.value.reason == "tls"
    assert seen == []


def load(tmp_path: Path, monitor: str) -> object:
    path = tmp_path / "w.toml"
    path.write_text(textwrap.dedent(monitor) + FEED_TABLE, encoding="utf-8")
    return load_config(path)


def test_allow_networks_and_proxy_are_read(tmp_path: Path) -> None:
    """[monitor] allow_networks become networks; proxy is kept as given."""
    config = load(
        tmp_path,
        """
        [monitor]
        allow_networks = ["10.20.0.0/16", "fd00:1::/64"]
        proxy = "http://proxy.internal:3128"
        """,
    )
    monitor = config.monitor  # type: ignore[attr-defined]
    assert monitor.allow_networks == (
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("fd00:1::/64"),
    )
    assert monitor.proxy == "http://proxy.internal:3128"


@pytest.mark.parametrize(
    ("monitor", "path", "message"),
    [
        pytest.param('allow_networks = ["10.0.0.0/8", "10.0.0.1/8"]',
                     "monitor.allow_networks[1]", "expected a network", id="host-bits-set"),
        pytest.param('allow_networks = ["intranet"]',
                     "monitor.allow_networks[0]", "expected a network", id="not-a-network"),
        pytest.param('allow_networks = "10.0.0.0/8"',
                     "monitor.allow_networks", "expected a list", id="not-a-list"),
        pytest.param('proxy = "socks5://u:hunter2@proxy:1080"',
                     "monitor.proxy", "expected an http:// URL", id="proxy-scheme"),
        pytest.param('proxy = "http://u:hunter2@proxy:99999"',
                     "monitor.proxy", "expected an http:// URL", id="proxy-port"),
    ],
)  # fmt: skip
def test_bad_fetch_keys_name_their_path(
    tmp_path: Path, monitor: str, path: str, message: str
) -> None:
    """A bad allow_networks entry or proxy names its key path, and never echoes a
    proxy's password."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "[monitor]\n" + monitor + "\n")
    assert caught.value.path == path
    assert message in caught.value.message
    assert "hunter2" not in str(caught.value)
