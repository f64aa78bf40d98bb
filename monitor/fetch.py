"""HTTP for feeds and article pages: one shared session, conditional GET, hard limits.

Every body is streamed with a size cap that counts decoded bytes (so it holds after
gzip), under a total deadline, so no publisher can stall or bloat the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from monitor.errors import FetchError
from monitor.models import Fetched

MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


def make_session(*, concurrency: int, per_host: int, user_agent: str) -> aiohttp.ClientSession:
    """The daemon's one session. Proxies from the environment are ignored (trust_env=False):
    an inherited HTTP_PROXY must not silently route every request elsewhere."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=per_host)
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": user_agent},
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )


class Fetcher:
    """GETs with the daemon's limits; failures come out as ``FetchError`` with a reason."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    async def get(
        self,
        url: str,
        *,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        auth: aiohttp.BasicAuth | None = None,
        accept_body: tuple[str, ...] = (),
    ) -> Fetched:
        """GET ``url``; 304 comes back as a Fetched with an empty body.

        With ``accept_body`` (content-type prefixes), a response of another type is not
        downloaded past its headers: it raises FetchError("not_html", ...).
        """
        try:
            async with asyncio.timeout(self._timeout):
                return await self._get(url, max_bytes, headers or {}, auth, accept_body)
        except TimeoutError:
            raise FetchError("timeout", f"no complete answer within {self._timeout:g}s") from None
        except aiohttp.TooManyRedirects:
            raise FetchError("redirects", f"more than {MAX_REDIRECTS} redirects") from None
        except aiohttp.InvalidURL:
            raise FetchError("bad_url", "invalid URL") from None
        except aiohttp.ClientConnectorError as e:
            raise FetchError("connect", f"cannot connect: {e.os_error.strerror or e}") from None
        except aiohttp.ClientPayloadError:
            raise FetchError("payload", "the response body was cut off or malformed") from None
        except aiohttp.ClientError as e:
            raise FetchError("http", f"HTTP exchange failed: {type(e).__name__}") from None

    async def _get(
        self,
        url: str,
        max_bytes: int,
        headers: Mapping[str, str],
        auth: aiohttp.BasicAuth | None,
        accept_body: tuple[str, ...],
    ) -> Fetched:
        async with self._session.get(
            url, headers=headers, auth=auth, max_redirects=MAX_REDIRECTS
        ) as resp:
            answer = {k.lower(): v for k, v in resp.headers.items()}
            final = str(resp.url)
            if resp.status == 304:
                return Fetched(final, 304, b"", answer)
            if not 200 <= resp.status < 300:
                raise FetchError(
                    f"http_{resp.status}", f"HTTP {resp.status}", status=resp.status, headers=answer
                )
            if accept_body and not resp.content_type.startswith(accept_body):
                raise FetchError("not_html", f"content type {resp.content_type}")
            declared = resp.content_length
            if declared is not None and declared > max_bytes:
                raise FetchError("too_large", f"declared {declared} bytes, cap is {max_bytes}")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError("too_large", f"body exceeds the {max_bytes}-byte cap")
            return Fetched(final, resp.status, bytes(body), answer)
