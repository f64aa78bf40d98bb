"""The address guard (DESIGN.md section 5): where a link found in a feed may lead.

Links inside feeds are untrusted: only http(s), and only to globally reachable addresses.
A host name is resolved once, every answer is checked, and the caller connects to the
checked addresses only, so a second DNS answer cannot slip in between (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from aiohttp.abc import AbstractResolver
from yarl import URL

from monitor.errors import FetchError

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})

# IANA special-purpose blocks that are not globally reachable, listed outright because
# ``is_global`` alone is wrong on older Pythons: 3.11.7 calls multicast, fec0::/10 and
# 64:ff9b:1::/48 global (CVE-2024-4032). Over-blocking a few anycast services is harmless.
_NON_GLOBAL: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
        "::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20",
        "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip
_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 shared address space
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: mapped, 6to4 or NAT64."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """Why ``address`` must not be reached, or None when it may.

    ``allowed`` networks (the operator's ``allow_networks``) pass whatever they contain.
    """
    if any(address in network for network in allowed):
        return None
    if isinstance(address, IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            why = refusal(inner, allowed)
            return f"stands for {inner}, {why}" if why else None
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address in _CGNAT, "shared address space (CGNAT)"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global or any(address in n for n in _NON_GLOBAL), "not global"),
    )
    return next((why for hit, why in checks if hit), None)


def ip_literal(host: str) -> Address | None:
    """``host`` read as an IP address in any spelling a resolver accepts, else None.

    getaddrinfo takes inet_aton's forms (127.1, 2130706433, 0x7f000001, 0177.0.0.1), so
    they are literals too, whatever a URL parser thinks of them.
    """
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def origin(url: URL) -> tuple[str, str, int | None]:
    """Scheme, host and port: what "the same site" means for trust and credentials."""
    return url.scheme.lower(), (url.raw_host or "").lower().rstrip("."), url.port


def screen(url: URL) -> URL:
    """An untrusted URL made safe to request, or FetchError("blocked").

    Only http(s) with a host; credentials in it are dropped, never sent or logged.
    """
    if url.scheme.lower() not in ALLOWED_SCHEMES or not url.raw_host:
        raise FetchError("blocked", f"only http(s) links are followed, not {url.scheme or '?'}:")
    return url.with_user(None) if url.raw_user is not None else url


class Guard:
    """Resolves untrusted hosts once and vouches for every address they resolve to."""

    def __init__(self, resolver: AbstractResolver, allowed: Sequence[Network] = ()) -> None:
        self._resolver = resolver
        self._allowed = tuple(allowed)

    def _vet(self, address: Address, host: str) -> None:
        why = refusal(address, self._allowed)
        if why:
            shown = str(address) if host == str(address) else f"{host} ({address})"
            raise FetchError("blocked", f"refused {shown}: {why} address")

    async def addresses(self, url: URL) -> tuple[str, ...]:
        """The checked addresses to connect to for ``url`` (screened first), or FetchError.

        "blocked" when any answer is refused (mixed public and private answers are
        refused, not filtered), "dns" when the name does not resolve.
        """
        host = (url.raw_host or "").rstrip(".")
        literal = ip_literal(host)
        if literal is not None:
            self._vet(literal, host)
            return (str(literal),)
        try:
            answers = await self._resolver.resolve(host, url.port or 0, socket.AF_UNSPEC)
        except OSError as e:
            raise FetchError("dns", f"cannot resolve {host}: {e.strerror or e}") from None
        found = tuple(dict.fromkeys(a["host"] for a in answers))
        if not found:
            raise FetchError("dns", f"cannot resolve {host}: no addresses")
        for answer in found:
            self._vet(ipaddress.ip_address(answer.split("%", 1)[0]), host)
        return found
