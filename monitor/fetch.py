"""HTTP for feeds and article pages: one shared session, conditional GET, hard limits.

Every body is streamed with a size cap that counts decoded bytes (so it holds after
gzip), under a total deadline, so no publisher can stall or bloat the daemon. Redirects
are followed here, hop by hop, so that the address guard (``monitor.guard``) sees every
hop and credentials never travel to another origin.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from monitor.config import MonitorConfig
from monitor.errors import FetchError
from monitor.guard import Guard, Network, origin, screen
from monitor.models import Fetched

MAX_REDIRECTS = 5
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})  # RFC 9110 section 15.4: the target has a new URL
# Never carried to another origin on a redirect, not even the same host on another port.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def make_session(*, user_agent: str) -> aiohttp.ClientSession:
    """The daemon's one session, shared by the fetcher and the notifiers.

    Proxies from the environment are ignored (trust_env=False): an inherited HTTP_PROXY
    must not silently route every request elsewhere. No cookie is ever kept. The
    connector sets no limits: the Fetcher bounds fetches itself, by host name, so a
    stalled publisher never holds a connection slot an alert is waiting for.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        headers={"User-Agent": user_agent},
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


class _Slots:
    """At most ``concurrency`` fetches in flight, and at most ``per_host`` to one host."""

    def __init__(self, concurrency: int, per_host: int) -> None:
        self._all = asyncio.Semaphore(concurrency)
        self._per_host = per_host
        self._hosts: dict[str, tuple[asyncio.Semaphore, int]] = {}  # semaphore, users

    @contextlib.asynccontextmanager
    async def hold(self, host: str) -> AsyncIterator[None]:
        sem, users = self._hosts.get(host, (asyncio.Semaphore(self._per_host), 0))
        self._hosts[host] = (sem, users + 1)
        try:
            # The host's slot first: a queue for one busy host must not pin global slots.
            async with sem, self._all:
                yield
        finally:
            sem, users = self._hosts.pop(host)
            if users > 1:
                self._hosts[host] = (sem, users - 1)


def _basic(user: str, password: str) -> str:
    """An Authorization value for HTTP basic auth (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _parse(raw: str) -> URL:
    """A URL as given, refusing whitespace and control characters that parsers disagree
    about (CVE-2023-24329: a leading space hid the scheme from urlparse)."""
    if raw != raw.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise FetchError("bad_url", "the URL contains whitespace or control characters")
    try:
        return URL(raw)
    except ValueError:
        raise FetchError("bad_url", "invalid URL") from None


@contextlib.asynccontextmanager
async def _translated(deadline: float) -> AsyncIterator[None]:
    """Run under the total deadline; aiohttp's failures become FetchErrors of our own
    wording (its messages can carry a URL, and a URL can carry a credential)."""
    try:
        async with asyncio.timeout(deadline):
            yield
    except aiohttp.ConnectionTimeoutError:  # a TimeoutError too: first
        raise FetchError("connect_timeout", "no connection within the deadline") from None
    except TimeoutError:
        raise FetchError("timeout", f"no complete answer within {deadline:g}s") from None
    except aiohttp.InvalidURL:
        raise FetchError("bad_url", "invalid URL") from None
    except aiohttp.ClientSSLError:  # a ClientConnectorError too: first
        raise FetchError("tls", "TLS handshake or certificate check failed") from None
    except aiohttp.ClientConnectorError as e:
        raise FetchError("connect", f"cannot connect: {e.os_error.strerror or e}") from None
    except aiohttp.ClientPayloadError:
        raise FetchError("payload", "the response body was cut off or malformed") from None
    except aiohttp.ServerDisconnectedError:
        raise FetchError("disconnected", "the server closed without answering") from None
    except aiohttp.ClientResponseError:
        # The response parser's verdict (oversized or too many headers, bad framing); its
        # message quotes the publisher's bytes, so it is not passed on.
        raise FetchError("protocol", "malformed HTTP response head or framing") from None
    except aiohttp.ClientError as e:
        raise FetchError("http", f"HTTP exchange failed: {type(e).__name__}") from None


class Fetcher:
    """GETs with the daemon's limits; failures come out as ``FetchError`` with a reason.

    ``timeout`` bounds a whole exchange (every hop, the body included) once it holds its
    slots; ``connect_timeout`` bounds each connection attempt. ``allow_networks`` opens
    networks to every link; ``proxy`` (an http:// URL) carries the requests, which are
    still guarded and pinned. ``resolver`` is the DNS resolver the guard consults.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout: float,
        concurrency: int,
        per_host: int,
        connect_timeout: float = 10.0,
        allow_networks: Sequence[Network] = (),
        proxy: str | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._session = session
        self._client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._slots = _Slots(concurrency, per_host)
        self._resolver = resolver or aiohttp.ThreadedResolver()
        self.set_policy(timeout=timeout, allow_networks=allow_networks, proxy=proxy)

    def set_policy(
        self, *, timeout: float, allow_networks: Sequence[Network], proxy: str | None
    ) -> None:
        """A reloaded watchlist's deadline (for the requests that start from now), opened
        networks and proxy (from each request's next hop: a redirect in flight follows
        the new ones); the slots' limits stay as they were made."""
        self._timeout = timeout
        self._guard = Guard(self._resolver, allow_networks)
        self._proxy = proxy

    async def get(
        self,
        url: str,
        *,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        accept_body: tuple[str, ...] = (),
        trusted_origin: str | None = None,
    ) -> Fetched:
        """GET ``url``; 304 comes back as a Fetched with an empty body.

        URLs of ``trusted_origin``'s origin (any URL of it may be given: for a feed, its
        own URL; for an article, its feed's URL) skip the address guard; every other URL,
        first or redirected to, must pass it or raises FetchError("blocked", ...). ``auth``
        (user name, password: HTTP basic auth) and the credential headers among
        ``headers`` go to ``url``'s origin only. With ``accept_body``
        (content-type prefixes), a response of another type is not downloaded past its
        headers: it raises FetchError("not_html", ...).
        """
        start = _parse(url)
        trusted = origin(screen(_parse(trusted_origin))) if trusted_origin is not None else None
        sent = {**(headers or {}), **({"Authorization": _basic(*auth)} if auth else {})}
        async with self._slots.hold(origin(start)[1]), _translated(self._timeout):
            return await self._follow(start, trusted, max_bytes, sent, accept_body)

    async def _follow(
        self,
        url: URL,
        trusted: tuple[str, str, int | None] | None,
        max_bytes: int,
        headers: Mapping[str, str],
        accept_body: tuple[str, ...],
    ) -> Fetched:
        """Follow redirects by hand, at most MAX_REDIRECTS, guarding every hop."""
        first = origin(url)
        permanent = True  # every hop so far was 301 or 308
        for hop in range(MAX_REDIRECTS + 1):
            guard = origin(url) != trusted
            if guard:
                url = screen(url)
            sent = (
                headers
                if origin(url) == first
                else {k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS}
            )
            async with self._open(url, guard, sent, hop) as resp:
                if resp.status not in _REDIRECTS:
                    fetched = await _read(url, resp, max_bytes, accept_body)
                    return replace(fetched, moved=bool(hop) and permanent)
                permanent = permanent and resp.status in _PERMANENT
                location = resp.headers.get("Location")
                if not location:
                    raise FetchError(
                        f"http_{resp.status}", "redirect without a Location", status=resp.status
                    )
                url = url.join(_parse(location)).with_fragment(None)
        raise FetchError("redirects", f"more than {MAX_REDIRECTS} redirects")

    @contextlib.asynccontextmanager
    async def _open(
        self,
        url: URL,
        guard: bool,
        headers: Mapping[str, str],
        hop: int,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request. A guarded URL goes to its checked addresses only (pinned: the
        URL names the address, Host and TLS SNI keep the name), never resolved again."""
        if not guard:
            targets, sni, sent = [url], None, headers
        else:
            try:
                addresses = await self._guard.addresses(url)
            except FetchError as e:
                if hop and e.reason == "blocked":
                    raise FetchError("blocked", f"redirect {hop}: {e}") from None
                raise
            targets = [url.with_host(a) for a in addresses]
            sni = url.raw_host.rstrip(".") if url.scheme == "https" and url.raw_host else None
            sent = {**headers, "Host": url.host_port_subcomponent or ""}
        resp = await self._connect(targets, sent, sni)
        try:
            yield resp
        finally:
            resp.release()

    async def _connect(
        self,
        targets: Sequence[URL],
        headers: Mapping[str, str],
        sni: str | None,
    ) -> aiohttp.ClientResponse:
        """The answer from the first of ``targets`` (one host's addresses) that connects."""
        *others, last = targets
        for target in others:
            try:
                return await self._get(target, headers, sni)
            except aiohttp.ClientSSLError:
                raise  # the name's certificate is wrong: another address is no cure
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
                continue
        return await self._get(last, headers, sni)

    async def _get(
        self,
        target: URL,
        headers: Mapping[str, str],
        sni: str | None,
    ) -> aiohttp.ClientResponse:
        return await self._session.get(
            target,
            headers=headers,
            allow_redirects=False,
            proxy=self._proxy,
            timeout=self._client_timeout,
            server_hostname=sni,
        )


async def _read(
    url: URL, resp: aiohttp.ClientResponse, max_bytes: int, accept_body: tuple[str, ...]
) -> Fetched:
    """The response as a Fetched, its body streamed and capped after decoding; its URL
    never carries credentials."""
    answer = {k.lower(): v for k, v in resp.headers.items()}
    final = str(url.with_user(None))
    if resp.status == 304:
        return Fetched(final, 304, b"", answer)
    if not 200 <= resp.status < 300:
        raise FetchError(
            f"http_{resp.status}", f"HTTP {resp.status}", status=resp.status, headers=answer
        )
    if accept_body and not resp.content_type.startswith(accept_body):
        raise FetchError("not_html", f"content type {resp.content_type}", status=resp.status)
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        raise FetchError(
            "too_large", f"declared {declared} bytes, cap is {max_bytes}", status=resp.status
        )
    body = bytearray()
    # iter_chunked yields decompressed bytes, so the cap holds against a gzip bomb.
    async for chunk in resp.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(
                "too_large", f"body exceeds the {max_bytes}-byte cap", status=resp.status
            )
    return Fetched(final, resp.status, bytes(body), answer)


def fetcher_for(session: aiohttp.ClientSession, monitor: MonitorConfig) -> Fetcher:
    """A Fetcher with the watchlist's limits, address policy and proxy."""
    return Fetcher(
        session,
        timeout=monitor.timeout,
        concurrency=monitor.concurrency,
        per_host=monitor.per_host,
        allow_networks=monitor.allow_networks,
        proxy=monitor.proxy,
    )
