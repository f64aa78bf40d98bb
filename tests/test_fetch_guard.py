"""The address guard (DESIGN.md 5, RELIABILITY.md A): links found in feeds reach only
global addresses, checked on every hop and pinned against DNS rebinding.

Live proofs use loopback only: the trusted publisher on 127.0.0.1, "internal" listeners on
other loopback addresses or ports that must see no connection, and a stub resolver for
host names. Other addresses appear only as strings in the classification tests.
"""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from monitor.errors import FetchError
from monitor.fetch import Fetcher, make_session
from monitor.guard import Network, ip_literal, refusal
from tests.hostile import (
    Authority,
    Hostile,
    StubResolver,
    running,
    same_port,
    self_signed,
)
from tests.servers import Publisher

CAP = 1 << 20

# IANA's IPv4 and IPv6 special-purpose address registries (and the multicast blocks): the
# entries not globally reachable, plus deprecated site-local. Their first and last
# addresses must be refused whatever Python's own tables say (CVE-2024-4032).
NON_GLOBAL = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/29", "192.0.0.170/31", "192.0.2.0/24", "192.88.99.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",
    "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:2::/48",
    "2001:db8::/32", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10",
    "ff00::/8",
]  # fmt: skip


@pytest.mark.parametrize("block", NON_GLOBAL)
def test_every_non_global_block_is_refused(block: str) -> None:
    """Both ends of every non-global IANA block are refused."""
    network = ipaddress.ip_network(block)
    assert refusal(network[0]) is not None
    assert refusal(network[-1]) is not None


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("169.254.169.254", "link-local"),
        ("127.0.0.2", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("10.1.2.3", "private"),
        ("100.64.0.1", "CGNAT"),
        ("239.1.1.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "stands for 127.0.0.1, loopback"),
        ("64:ff9b::a9fe:a9fe", "stands for 169.254.169.254, link-local"),
        ("2002:7f00:1::", "stands for 127.0.0.1, loopback"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
    ],
)
def test_refusals_say_why(address: str, why: str) -> None:
    """The refusal names the kind of address, also for IPv4 hidden inside IPv6."""
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None
    assert why in reason


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34",
     "64:ff9b::5db8:d822", "2002:5db8:d822::"],
)  # fmt: skip
def test_global_addresses_pass(address: str) -> None:
    """Public addresses pass, also when written as mapped, NAT64 or 6to4 IPv6."""
    assert refusal(ipaddress.ip_address(address)) is None


def test_allow_networks_open_only_what_they_name() -> None:
    """An allowed network opens its own addresses, not the rest of the private space."""
    allowed: list[Network] = [ipaddress.ip_network("10.0.0.0/8")]
    assert refusal(ipaddress.ip_address("10.9.8.7"), allowed) is None
    assert refusal(ipaddress.ip_address("::ffff:10.9.8.7"), allowed) is None
    assert refusal(ipaddress.ip_address("192.168.1.1"), allowed) is not None
    assert refusal(ipaddress.ip_address("127.0.0.1"), allowed) is not None


@pytest.mark.parametrize(
    "host", ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7f.1", "127.0.0.1"]
)
def test_ipv4_literals_in_every_spelling_are_read(host: str) -> None:
    """Every spelling getaddrinfo accepts for 127.0.0.1 is read as that literal."""
    assert ip_literal(host) == ipaddress.ip_address("127.0.0.1")


def test_names_are_not_literals() -> None:
    """A host name is not mistaken for an address."""
    assert ip_literal("example.com") is None
    assert ip_literal("cafe") is None


def guarded(
    session: aiohttp.ClientSession,
    *,
    allow: tuple[str, ...] = (),
    resolver: StubResolver | None = None,
    proxy: str | None = None,
) -> Fetcher:
    """A fetcher with test-sized limits, opened networks, a stub resolver, a proxy."""
    networks = [ipaddress.ip_network(n) for n in allow]
    return Fetcher(
        session, timeout=5.0, concurrency=8, per_host=4,
        allow_networks=networks, resolver=resolver, proxy=proxy,
    )  # fmt: skip


async def refused(fetcher: Fetcher, url: str, trusted: str) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetcher.get(url, max_bytes=CAP, trusted_origin=trusted)
    assert caught.value.reason == "blocked", caught.value
    return caught.value


async def test_loopback_in_every_spelling_is_refused_before_connecting(
    session: aiohttp.ClientSession, publisher: Publisher
) -> None:
    """Links from the 127.0.0.1 publisher's feed to loopback elsewhere, however the address
    is spelt, are refused and the listeners there see no connection (RELIABILITY.md 2)."""
    fetcher = guarded(session)
    async with same_port("127.0.0.1", "::1", "127.0.0.2") as (v4, v6, other):
        port = v4.port
        links = [
            f"http://127.0.0.1:{port}/", f"http://127.1:{port}/", f"http://2130706433:{port}/",
            f"http://0x7f000001:{port}/", f"http://0177.0.0.1:{port}/", f"http://[::1]:{port}/",
            f"http://[::ffff:127.0.0.1]:{port}/", f"http://0.0.0.0:{port}/",
            f"http://127.0.0.2:{port}/", f"https://127.0.0.2:{port}/",
        ]  # fmt: skip
        for link in links:
            await refused(fetcher, link, trusted=publisher.base + "/rss.xml")
        assert (v4.connections, v6.connections, other.connections) == (0, 0, 0)
        # The listeners do count: a URL of the trusted origin itself reaches one.
        got = await fetcher.get(v4.base + "/", max_bytes=CAP, trusted_origin=v4.base)
        assert got.body == b"hello from 127.0.0.1"
        assert v4.connections == 1


@pytest.mark.parametrize(
    "link",
    [
        "file:///etc/passwd", "file:/etc/passwd", "FILE://x/etc/passwd",
        "file:../../etc/passwd", "gopher://127.0.0.1:70/", "ftp://127.0.0.1/x",
        "data:text/plain,hello", "javascript:alert(1)", "//127.0.0.2/x",
    ],
)  # fmt: skip
async def test_only_http_and_https_links_are_followed(
    session: aiohttp.ClientSession, publisher: Publisher, link: str
) -> None:
    """Any other scheme is refused by the parsed-scheme allow-list (RELIABILITY.md 7)."""
    await refused(guarded(session), link, trusted=publisher.base)


@pytest.mark.parametrize(
    "link", [" http://127.0.0.2/", "http://127.0.0.2/\n", "http://a\tb/", "http://a\x00b/"]
)
async def test_whitespace_and_controls_in_a_link_are_refused(
    session: aiohttp.ClientSession, publisher: Publisher, link: str
) -> None:
    """A link with whitespace or control characters is refused before any parsing
    leniency can change its meaning (CVE-2023-24329)."""
    with pytest.raises(FetchError) as caught:
        await guarded(session).get(link, max_bytes=CAP, trusted_origin=publisher.base)
    assert caught.value.reason == "bad_url"


async def test_names_resolving_to_internal_addresses_are_refused(
    session: aiohttp.ClientSession, publisher: Publisher
) -> None:
    """A name whose answer is internal is refused, and so is one whose answers mix an
    allowed address with an internal one: none is picked (RELIABILITY.md 4)."""
    async with same_port("127.0.0.3", "127.0.0.5") as (inside, allowed):
        resolver = StubResolver({"inside.test": [["127.0.0.3"]],
                                 "mixed.test": [["127.0.0.5", "127.0.0.3"]]})  # fmt: skip
        fetcher = guarded(session, allow=("127.0.0.5/32",), resolver=resolver)
        port = inside.port
        error = await refused(fetcher, f"http://inside.test:{port}/", trusted=publisher.base)
        assert "inside.test (127.0.0.3)" in str(error)
        await refused(fetcher, f"http://mixed.test:{port}/", trusted=publisher.base)
        assert (inside.connections, allowed.connections) == (0, 0)
        assert resolver.queries == ["inside.test", "mixed.test"]


async def test_the_checked_address_is_the_one_connected_to(
    session: aiohttp.ClientSession, publisher: Publisher
) -> None:
    """DNS rebinding: the name is resolved once per fetch and the connection goes to the
    address checked, under the name's own Host header; when the next answer turns
    internal, that fetch is refused (RELIABILITY.md 5)."""
    async with same_port("127.0.0.5", "127.0.0.3") as (allowed, inside):
        resolver = StubResolver({"rebind.test": [["127.0.0.5"], ["127.0.0.3"]]})
        fetcher = guarded(session, allow=("127.0.0.5/32",), resolver=resolver)
        url = f"http://rebind.test:{allowed.port}/story"
        got = await fetcher.get(url, max_bytes=CAP, trusted_origin=publisher.base)
        assert (got.body, got.url) == (b"hello from 127.0.0.5", url)
        assert resolver.queries == ["rebind.test"]
        assert allowed.requests[0].headers["host"] == f"rebind.test:{allowed.port}"
        await refused(fetcher, url, trusted=publisher.base)
        assert resolver.queries == ["rebind.test"] * 2
        assert inside.connections == 0


async def test_every_redirect_hop_is_checked(
    session: aiohttp.ClientSession, publisher: Publisher
) -> None:
    """A trusted page redirecting to a loopback listener or to a name resolving inside is
    refused at that hop, and nothing connects there (RELIABILITY.md 6)."""
    feed_site = Hostile("127.0.0.1")
    async with running(feed_site), same_port("127.0.0.2", "127.0.0.3") as (internal, inside):
        feed_site.redirects = {
            "/a": f"http://127.0.0.2:{internal.port}/",
            "/b": "/c",
            "/c": f"http://inside.test:{inside.port}/",
        }
        resolver = StubResolver({"inside.test": [["127.0.0.3"]]})
        fetcher = guarded(session, resolver=resolver)
        error = await refused(fetcher, feed_site.base + "/a", trusted=feed_site.base)
        assert str(error).startswith("redirect 1: refused 127.0.0.2")
        error = await refused(fetcher, feed_site.base + "/b", trusted=feed_site.base)
        assert str(error).startswith("redirect 2: refused inside.test (127.0.0.3)")
        assert (internal.connections, inside.connections) == (0, 0)


async def test_allow_networks_open_a_network_to_feeds_and_links_alike(
    session: aiohttp.ClientSession,
) -> None:
    """A feed redirected to another origin is checked like a link; an allowed network
    opens it, while links to other internal hosts stay refused (RELIABILITY.md 11)."""
    feed_site = Hostile("127.0.0.1")
    async with running(feed_site), same_port("127.0.0.2", "127.0.0.3") as (intranet, other):
        feed_site.redirects = {"/feed": f"http://127.0.0.2:{intranet.port}/feed"}
        feed = feed_site.base + "/feed"
        await refused(guarded(session), feed, trusted=feed)
        assert intranet.connections == 0
        fetcher = guarded(session, allow=("127.0.0.2/32",))
        got = await fetcher.get(feed, max_bytes=CAP, trusted_origin=feed)
        assert got.body == b"hello from 127.0.0.2"
        await refused(fetcher, f"http://127.0.0.3:{other.port}/", trusted=feed)
        assert other.connections == 0


async def test_credentials_stay_with_their_origin(session: aiohttp.ClientSession) -> None:
    """Basic auth and cookies go to the feed's origin and its same-origin redirects only,
    never to another origin, not even the same host on another port (RELIABILITY.md 9)."""
    feed_site, elsewhere = Hostile("127.0.0.1"), Hostile("127.0.0.1")
    async with running(feed_site, elsewhere):
        feed_site.redirects = {"/feed": "/moved", "/moved": elsewhere.base + "/feed"}
        fetcher = guarded(session, allow=("127.0.0.1/32",))
        feed = feed_site.base + "/feed"
        await fetcher.get(
            feed, max_bytes=CAP, trusted_origin=feed,
            auth=("desk", "s3cret"), headers={"Cookie": "session=abc"},
        )  # fmt: skip
        first, moved = feed_site.requests
        (away,) = elsewhere.requests
        for home in (first, moved):
            assert home.headers["authorization"] == "Basic ZGVzazpzM2NyZXQ="  # desk:s3cret
            assert home.headers["cookie"] == "session=abc"
        assert "authorization" not in away.headers
        assert "cookie" not in away.headers


async def test_credentials_in_a_link_are_dropped_and_never_told(
    session: aiohttp.ClientSession, publisher: Publisher
) -> None:
    """user:pass@ in an untrusted link is neither sent nor repeated in a URL or an error
    (RELIABILITY.md 8)."""
    async with same_port("127.0.0.5", "127.0.0.3") as (allowed, inside):
        fetcher = guarded(session, allow=("127.0.0.5/32",))
        got = await fetcher.get(
            f"http://user:s3cret@127.0.0.5:{allowed.port}/x",
            max_bytes=CAP, trusted_origin=publisher.base,
        )  # fmt: skip
        assert "authorization" not in allowed.requests[0].headers
        assert "s3cret" not in got.url
        error = await refused(
            fetcher, f"http://user:s3cret@127.0.0.3:{inside.port}/", trusted=publisher.base
        )
        assert "s3cret" not in str(error)
        assert inside.connections == 0


async def test_proxy_from_the_environment_is_ignored(
    session: aiohttp.ClientSession, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY in the environment is not used: the request goes direct
    (RELIABILITY.md 10)."""
    proxy = Hostile("127.0.0.4")
    async with running(proxy):
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.base)
        feed = publisher.base + "/rss.xml"
        env_session = make_session(user_agent="newsmon-test")
        try:
            got = await guarded(env_session).get(feed, max_bytes=CAP, trusted_origin=feed)
        finally:
            await env_session.close()
        assert got.status == 200
        assert proxy.connections == 0


async def test_a_configured_proxy_carries_pinned_and_guarded_requests(
    session: aiohttp.ClientSession, publisher: Publisher
) -> None:
    """Through an explicit proxy, a link still goes to its checked address (the proxy is
    asked for the address, with the name as Host), and a refused link never reaches the
    proxy at all (RELIABILITY.md 10)."""
    proxy = Hostile("127.0.0.4", greeting="via proxy")
    async with running(proxy):
        resolver = StubResolver({"news.test": [["127.0.0.5"]], "inside.test": [["127.0.0.3"]]})
        fetcher = guarded(session, allow=("127.0.0.5/32",), resolver=resolver, proxy=proxy.base)
        got = await fetcher.get(
            "http://news.test:8080/story", max_bytes=CAP, trusted_origin=publisher.base
        )
        assert got.body == b"via proxy"
        (request,) = proxy.requests
        assert request.target == "http://127.0.0.5:8080/story"
        assert request.headers["host"] == "news.test:8080"
        await refused(fetcher, "http://inside.test:8080/", trusted=publisher.base)
        await refused(fetcher, "http://127.0.0.3:8080/", trusted=publisher.base)
        assert proxy.connections == 1


async def test_a_pinned_https_link_is_verified_for_its_name(tmp_path: Path) -> None:
    """Pinning keeps TLS honest: the certificate is checked against the link's host name
    (sent as SNI), not the pinned address, so a name the certificate does not cover fails."""
    server_tls, cert = self_signed(tmp_path, "news.test")
    trusting = ssl.create_default_context(cafile=str(cert))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting))
    server = Hostile("127.0.0.5", greeting="over tls", tls=server_tls)
    try:
        async with running(server):
            resolver = StubResolver({"news.test": [["127.0.0.5"]], "other.test": [["127.0.0.5"]]})
            fetcher = guarded(session, allow=("127.0.0.5/32",), resolver=resolver)
            got = await fetcher.get(f"https://news.test:{server.port}/x", max_bytes=CAP)
            assert (got.body, got.url) == (b"over tls", f"https://news.test:{server.port}/x")
            with pytest.raises(FetchError) as caught:
                await fetcher.get(f"https://other.test:{server.port}/x", max_bytes=CAP)
            assert caught.value.reason == "tls"
    finally:
        await session.close()


def serving(authority: Authority, address: str, valid: tuple[str, str]) -> Hostile:
    return Hostile(address, greeting="over tls", tls=authority.serve("news.test", valid=valid))


async def test_an_expired_certificate_fails_closed(tmp_path: Path) -> None:
    """A certificate from a CA the client trusts, for the right name, but expired in
    2020, is refused as "tls" (OpenSSL's verdict: expired) with nothing requested; the
    same CA's current certificate for the name is fetched (RELIABILITY.md case 19)."""
    authority = Authority(tmp_path / "ca")
    now, stamp = datetime.now(UTC), "%Y%m%d%H%M%SZ"
    current = (now - timedelta(hours=1)).strftime(stamp), (now + timedelta(days=1)).strftime(stamp)
    expired = serving(authority, "127.0.0.6", ("20200101000000Z", "20200102000000Z"))
    valid = serving(authority, "127.0.0.7", current)
    trusting = ssl.create_default_context(cafile=str(authority.path))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusting))
    try:
        async with running(expired), running(valid):
            resolver = StubResolver({"news.test": [["127.0.0.6"], ["127.0.0.7"]]})
            fetcher = guarded(session, allow=("127.0.0.6/31",), resolver=resolver)
            with pytest.raises(FetchError) as caught:
                await fetcher.get(f"https://news.test:{expired.port}/x", max_bytes=CAP)
            assert caught.value.reason == "tls"
            verdict = caught.value.__context__
            assert isinstance(verdict, aiohttp.ClientConnectorCertificateError)
            assert verdict.certificate_error.verify_code == 10  # X509_V_ERR_CERT_HAS_EXPIRED
            assert expired.requests == []
            got = await fetcher.get(f"https://news.test:{valid.port}/x", max_bytes=CAP)
            assert got.body == b"over tls"
    finally:
        await session.close()


async def test_credentials_in_the_operators_feed_url_are_used_not_repeated(
    session: aiohttp.ClientSession,
) -> None:
    """A watchlist feed URL with user:pass@ is trusted: they authenticate the request, and
    the URL handed back carries no credential."""
    feed_site = Hostile("127.0.0.1")
    async with running(feed_site):
        feed = feed_site.base.replace("http://", "http://desk:s3cret@") + "/feed"
        got = await guarded(session).get(feed, max_bytes=CAP, trusted_origin=feed)
        assert feed_site.requests[0].headers["authorization"] == "Basic ZGVzazpzM2NyZXQ="
        assert got.url == feed_site.base + "/feed"
