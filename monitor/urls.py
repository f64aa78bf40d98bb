"""URL normalization: one spelling per article, so one story is one key."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# Query parameters that only say where a click came from (marketing and analytics).
_TRACKING_PREFIXES = ("utm_", "mtm_", "pk_", "at_")
_TRACKING_NAMES = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
        "mc_cid", "mc_eid", "_hsenc", "_hsmi", "mkt_tok", "igshid", "ocid", "cmpid",
        "ref_src", "ref_url", "smid", "sr_share", "ito", "xtor", "__twitter_impression",
    }
)  # fmt: skip
DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in _TRACKING_NAMES or lowered.startswith(_TRACKING_PREFIXES)


def normalize_url(url: str) -> str | None:
    """The canonical spelling of an http(s) URL, or None when it is not one.

    Lower-case scheme and host, no default port, no fragment, no tracking parameters,
    the rest of the query sorted. The path is kept as given: servers may treat case in
    it as meaningful.
    """
    try:
        url.encode("utf-8")  # lone surrogates (from JSON) are no URL
        parts = urlsplit(url.strip())
        port = parts.port
    except (ValueError, UnicodeEncodeError):
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
    )
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def without_password(url: str) -> str:
    """``url`` with the password of its user info, if it has one, shown as ``***``: a
    feed URL may carry basic-auth credentials, which logs and listings must not print."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def joined(base: str, link: str) -> str | None:
    """``link`` resolved against ``base``; None where either is malformed (urljoin raises
    on "http://[2001:db8::1/x"): a publisher's typo in one item or header must cost that
    link, not the whole feed's poll."""
    try:
        return urljoin(base, link)
    except ValueError:
        return None


def resolved(base: str, link: str) -> str | None:
    """``link`` against ``base``, normalized; None for no link or one that is no URL."""
    return normalize_url(joined(base, link) or "") if link else None
