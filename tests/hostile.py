"""Hostile HTTP servers on loopback: raw asyncio, so they can break HTTP in ways aiohttp's
own server refuses to (slow drips, bombs, lies about lengths, silence).

One ``Hostile`` serves every misbehaviour, one per path; it counts TCP connections before
reading a byte, so "no connection was made" is observable. It also answers absolute-form
request targets, so it doubles as a recording forward proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import socket
import ssl
import subprocess
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

Writer = asyncio.StreamWriter


@functools.cache
def bomb(encoding: str, decoded: int) -> bytes:
    """``decoded`` zero bytes compressed as gzip or deflate (zlib-wrapped, RFC 9110 8.4.1.2)."""
    wbits = {"gzip": 31, "deflate": 15}[encoding]
    # run-length only: zeros pack as tight (1032:1) as with a full search, twice as fast
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits, 9, zlib.Z_RLE)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(decoded >> 20)]
    return b"".join(parts) + packer.flush()


LOGIN_PAGE = b"<!doctype html><html><body><form>Sign in</form></body></html>"
FEED = ("Content-Type", "application/rss+xml")
HTML = ("Content-Type", "text/html")


def length(n: int) -> tuple[str, str]:
    return ("Content-Length", str(n))


def head(status: int, *headers: tuple[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class Request:
    target: str  # as sent: a path, or an absolute URL when this server acts as a proxy
    headers: dict[str, str]  # names lower-cased


class Hostile:
    """A loopback HTTP server whose paths misbehave; see ``_routes`` for the menu.

    ``redirects`` maps a path to the Location it answers 302 with, ``pages`` a path to
    what it serves (both set by tests); any other path answers 200 with ``greeting``.
    ``release`` ends the stalls.
    """

    DRIP_INTERVAL = 0.05  # seconds between the bytes of /drip
    bomb_size = 64 << 20  # decoded bytes of the bombs

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        greeting: str = "hello",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.tls = tls
        self.port = port
        self.greeting = greeting
        self.connections = 0
        self.requests: list[Request] = []
        self.redirects: dict[str, str] = {}
        self.pages: dict[str, tuple[str, bytes]] = {}  # path: content type, body
        self.seen = asyncio.Event()  # set at the first request read
        self.release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._routes: dict[str, Callable[[Writer], Awaitable[None]]] = {
            "/drip": self._drip,
            "/hang": self._hang,
            "/gzip-bomb": functools.partial(self._bomb, "gzip"),
            "/deflate-bomb": functools.partial(self._bomb, "deflate"),
            "/double-gzip-bomb": self._double_bomb,
            "/endless": self._endless,
            "/huge-length": self._huge_length,
            "/long-header": self._long_header,
            "/many-headers": self._many_headers,
            "/html": self._html,
            "/empty": self._empty,
            "/truncated": self._truncated,
        }

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.release.set()
        if self._server:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
            line, *fields = raw.decode("latin-1").split("\r\n")
            target = line.split(" ")[1]
            pairs = (f.split(":", 1) for f in fields if ":" in f)
            self.requests.append(Request(target, {k.strip().lower(): v.strip() for k, v in pairs}))
            self.seen.set()
            path = target.split("?", 1)[0]
            await self._routes.get(path, self._plain)(writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _plain(self, writer: Writer) -> None:
        target = self.requests[-1].target
        path = target.split("?", 1)[0]
        if path in self.redirects:
            writer.write(head(302, ("Location", self.redirects[path]), length(0)))
            return
        kind, body = self.pages.get(path, ("text/plain", self.greeting.encode()))
        writer.write(head(200, ("Content-Type", kind), length(len(body))))
        writer.write(body)

    async def _drip(self, writer: Writer) -> None:
        """A complete-looking answer whose body arrives one byte at a time, forever."""
        writer.write(head(200, FEED, length(100_000)))
        while not self.release.is_set():
            writer.write(b"<")
            await writer.drain()
            await asyncio.sleep(self.DRIP_INTERVAL)

    async def _hang(self, writer: Writer) -> None:
        """Accepts, reads the request, never answers."""
        await self.release.wait()

    async def _bomb(self, encoding: str, writer: Writer) -> None:
        """Zeros: 64 MiB in about 64 KB by default, with an honest Content-Length."""
        payload = bomb(encoding, self.bomb_size)
        writer.write(head(200, FEED, ("Content-Encoding", encoding), length(len(payload))))
        writer.write(payload)

    async def _double_bomb(self, writer: Writer) -> None:
        """The gzip bomb gzipped again, declared as ``Content-Encoding: gzip, gzip``."""
        payload = gzip.compress(bomb("gzip", self.bomb_size))
        writer.write(head(200, FEED, ("Content-Encoding", "gzip, gzip"), length(len(payload))))
        writer.write(payload)

    async def _endless(self, writer: Writer) -> None:
        """A chunked body that never ends."""
        writer.write(head(200, HTML, ("Transfer-Encoding", "chunked")))
        chunk = b"%x\r\n%s\r\n" % (1 << 16, b"x" * (1 << 16))
        while True:
            writer.write(chunk)
            await writer.drain()

    async def _huge_length(self, writer: Writer) -> None:
        """Declares five gigabytes, then waits: the client must not start reading."""
        writer.write(head(200, HTML, length(5_000_000_000)))
        await self.release.wait()

    async def _long_header(self, writer: Writer) -> None:
        writer.write(head(200, ("X-Long", "a" * 100_000), length(0)))

    async def _many_headers(self, writer: Writer) -> None:
        many = [(f"X-H{i}", "v") for i in range(10_000)]
        writer.write(head(200, *many, length(0)))

    async def _html(self, writer: Writer) -> None:
        """A login page where a feed was expected."""
        page = LOGIN_PAGE
        writer.write(head(200, HTML, length(len(page))))
        writer.write(page)

    async def _empty(self, writer: Writer) -> None:
        writer.write(head(200, FEED, length(0)))

    async def _truncated(self, writer: Writer) -> None:
        """Promises 1000 bytes, sends 10, hangs up."""
        writer.write(head(200, FEED, length(1000)))
        writer.write(b"<rss><chan")


@contextlib.asynccontextmanager
async def running(*servers: Hostile) -> AsyncIterator[None]:
    """Start ``servers``; stop them all on the way out."""
    async with contextlib.AsyncExitStack() as stack:
        for server in servers:
            await server.start()
            stack.push_async_callback(server.stop)
        yield


@contextlib.asynccontextmanager
async def same_port(*hosts: str) -> AsyncIterator[list[Hostile]]:
    """Running servers on several loopback addresses sharing one port (a pinned URL keeps
    its port); each greets with its own address."""
    for _ in range(20):
        async with contextlib.AsyncExitStack() as stack:
            try:
                servers = await _start_together(stack, hosts)
            except OSError:  # that port is taken on one of the addresses: try another
                continue
            yield servers
            return
    raise RuntimeError("no port free on every address")


async def _start_together(
    stack: contextlib.AsyncExitStack, hosts: tuple[str, ...]
) -> list[Hostile]:
    servers: list[Hostile] = []
    for host in hosts:
        server = Hostile(host, servers[0].port if servers else 0, f"hello from {host}")
        await server.start()
        stack.push_async_callback(server.stop)
        servers.append(server)
    return servers


class StubResolver(AbstractResolver):
    """DNS for made-up names: each name answers from a script, one answer list per query
    (the last one repeats), so a test can play a rebinding attacker."""

    def __init__(self, script: dict[str, list[list[str]]]) -> None:
        self.script = script
        self.queries: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.queries.append(host)
        answers = self.script.get(host)
        if not answers:
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [
            ResolveResult(
                hostname=host, host=a, port=port, proto=0, flags=0,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
            )
            for a in addresses
        ]  # fmt: skip

    async def close(self) -> None:
        pass


def _openssl(*args: str, cwd: Path | None = None) -> None:
    made = subprocess.run(["openssl", *args], capture_output=True, check=False, cwd=cwd)
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a certificate here: {made.stderr.decode()[-300:]}")


class Authority:
    """A certificate authority of a test's own, in ``folder``: it signs server
    certificates, and ``path`` is its own certificate, for a client that should trust it."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir()
        (folder / "index.txt").touch()
        (folder / "serial.txt").write_text("01\n")
        (folder / "ca.cnf").write_text(
            "[ca]\ndefault_ca = here\n[here]\ndatabase = index.txt\nnew_certs_dir = .\n"
            "serial = serial.txt\ndefault_md = sha256\npolicy = any\ncopy_extensions = copy\n"
            "unique_subject = no\n[any]\ncommonName = supplied\n"
        )
        self.folder, self.path, self._key = folder, folder / "ca.pem", folder / "ca.key"
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", "/CN=newsmon test CA", "-keyout", str(self._key),
                 "-out", str(self.path))  # fmt: skip

    def serve(self, name: str, *, valid: tuple[str, str]) -> ssl.SSLContext:
        """A server context with a certificate for the DNS name ``name``, valid from
        ``valid[0]`` to ``valid[1]`` (openssl's YYYYMMDDHHMMSSZ)."""
        cert, key, request = (
            self.folder / f"{name}-{valid[1]}.{kind}" for kind in ("pem", "key", "csr")
        )
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-addext", f"subjectAltName=DNS:{name}",
                 "-keyout", str(key), "-out", str(request))  # fmt: skip
        _openssl("ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", str(self.path),
                 "-keyfile", str(self._key), "-in", str(request), "-out", str(cert),
                 "-startdate", valid[0], "-enddate", valid[1], cwd=self.folder)  # fmt: skip
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context


def self_signed(directory: Path, name: str) -> tuple[ssl.SSLContext, Path]:
    """A server context with a self-signed certificate for ``name`` (a DNS name or an IP
    address), and the certificate's path for a client that should trust it."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    kind = "IP" if name[0].isdigit() else "DNS"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", f"/CN={name}", "-addext", f"subjectAltName={kind}:{name}",
             "-keyout", str(key), "-out", str(cert))  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert
