"""The TOML watchlist turned into frozen, validated dataclasses.

Strict on purpose: an unknown key, a wrong type or a dangling reference is a ``ConfigError``
naming the dotted key path (``rules[1].notify[0]``), so a typo never silently disables a
rule. Secrets are read here, and only their ``Secret`` wrapper leaves this module.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias
from urllib.parse import urlsplit

from monitor import __version__
from monitor.cluster import DEFAULT_THRESHOLD
from monitor.durations import parse_duration
from monitor.errors import ConfigError, EmptyWatchlist, RuleCompileError
from monitor.models import Document, LanePolicy
from monitor.parse_job import MAX_ENTRIES
from monitor.rules import RuleIndex, compile_rules
from monitor.rules.syntax import ENTITY_NAME
from monitor.secrets import Secret, UnreadSecret
from monitor.urls import DEFAULT_PORTS, without_password

if TYPE_CHECKING:  # the guard imports aiohttp, which `newsmon check` need not load
    from monitor.guard import Network

DEFAULT_USER_AGENT = f"newsmon/{__version__} (+https://github.com/newsmon/newsmon)"


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    database: Path
    interval: float = 600.0
    min_interval: float = 60.0
    max_interval: float = 86400.0
    adaptive: bool = False
    concurrency: int = 32
    per_host: int = 2
    fetch_articles: bool = True
    user_agent: str = DEFAULT_USER_AGENT
    durability: Literal["process", "power"] = "process"
    notices: tuple[str, ...] = ()
    first_poll_max_age: float = 86400.0
    feed_max_bytes: int = 10 * 1024 * 1024
    page_max_bytes: int = 5 * 1024 * 1024
    timeout: float = 30.0  # total deadline of one HTTP exchange, body included
    extract_workers: int = 0  # 0: one per core
    extract_timeout: float = 10.0
    parse_timeout: float = 10.0  # a feed that takes longer to parse fails this poll
    allow_networks: tuple[Network, ...] = ()  # opened to every link, past the address guard
    proxy: str | None = None  # an http:// proxy for fetches; the guard still applies
    max_entries: int = MAX_ENTRIES  # a poll handles at most this many of a feed's newest entries
    cluster_threshold: float = DEFAULT_THRESHOLD  # containment that makes two texts one story
    cluster_window: float = 3 * 86400.0  # how far back a new entry looks for its story
    retention: float = 30 * 86400.0  # how long entries keep their text (Store.prune)
    metrics: tuple[str, int] | None = None  # host and port of the metrics endpoint; off: None


@dataclass(frozen=True, slots=True)
class FeedConfig:
    url: str
    name: str | None  # None: the feed's own title once known, its URL until then
    interval: float
    tags: tuple[str, ...] = ()
    enabled: bool = True
    adaptive: bool = False  # the interval follows how often the feed publishes
    username: str | None = None
    password: Secret | None = None

    @property
    def label(self) -> str:
        """The name rules scope by before the feed's title is known."""
        return self.name or self.url

    @property
    def shown(self) -> str:
        """How logs and messages name the feed before its title is known: its label,
        without the password its URL may carry for basic auth."""
        return self.name or without_password(self.url)

    def titled(self, title: str | None) -> str:
        """How logs and notices name the feed once a poll has read its ``title``, as
        `newsmon feeds` and alerts do (DESIGN.md 2: the URL until the title is known)."""
        return self.name or title or self.shown


@dataclass(frozen=True, slots=True)
class RuleConfig:
    name: str
    query: str
    notify: tuple[str, ...]
    feeds: tuple[str, ...] = ("*",)
    enabled: bool = True
    max_per_hour: int | None = None
    examples_match: tuple[str, ...] = ()
    examples_no_match: tuple[str, ...] = ()
    per_story: bool = True  # False: every copy of a story alerts, not just the first


@dataclass(frozen=True, slots=True)
class ConsoleNotifierConfig:
    name: str
    lane: LanePolicy = field(default_factory=LanePolicy)


@dataclass(frozen=True, slots=True)
class WebhookNotifierConfig:
    name: str
    url: Secret
    secret: Secret | None = None
    timeout: float = 30.0
    lane: LanePolicy = field(default_factory=LanePolicy)


@dataclass(frozen=True, slots=True)
class SlackNotifierConfig:
    name: str
    url: Secret
    timeout: float = 30.0
    lane: LanePolicy = field(default_factory=LanePolicy)


@dataclass(frozen=True, slots=True)
class EmailNotifierConfig:
    name: str
    host: str
    port: int
    security: Literal["starttls", "tls", "none"]
    sender: str
    to: tuple[str, ...]
    username: str | None = None
    password: Secret | None = None
    timeout: float = 30.0
    lane: LanePolicy = field(default_factory=LanePolicy)


NotifierConfig: TypeAlias = (
    ConsoleNotifierConfig | WebhookNotifierConfig | SlackNotifierConfig | EmailNotifierConfig
)


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    monitor: MonitorConfig
    feeds: tuple[FeedConfig, ...]
    entities: Mapping[str, tuple[str, ...]]
    rules: tuple[RuleConfig, ...]
    notifiers: Mapping[str, NotifierConfig]
    index: RuleIndex = field(repr=False)
    # feed URL -> names of the enabled rules that watch it
    scopes: Mapping[str, frozenset[str]] = field(repr=False)
    # Derived once per watchlist, not per poll (10,000 rules x 10,000 feeds made per-poll
    # copies cost gigabytes; docs/performance.md): rule -> its notifiers, the rules that
    # alert once per copy, and each capped rule's max_per_hour.
    routes: Mapping[str, tuple[str, ...]] = field(repr=False, default_factory=dict)
    enabled: Mapping[str, FeedConfig] = field(repr=False, default_factory=dict)  # by URL
    per_copy: frozenset[str] = field(repr=False, default=frozenset())
    caps: Mapping[str, int] = field(repr=False, default_factory=dict)

    def rule(self, name: str) -> RuleConfig | None:
        return next((r for r in self.rules if r.name == name), None)


_MISSING: Any = object()


class _Table:
    """Reads one TOML table, remembering which keys were used so leftovers are errors.
    ``secrets``: read the variables and files secrets are kept in (see ``load_config``)."""

    def __init__(self, data: object, path: str, base: Path, secrets: bool) -> None:
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected a table, got {_kind(data)}")
        self.data: dict[str, Any] = data
        self.path = path
        self.base = base
        self.secrets = secrets
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def _get(self, name: str, types: tuple[type, ...], what: str, default: Any) -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise ConfigError(self.key(name), "is required")
            return default
        value = self.data[name]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            raise ConfigError(self.key(name), f"expected {what}, got {_shown(value)}")
        return value

    def text(self, name: str, default: Any = _MISSING) -> Any:
        value = self._get(name, (str,), "a string", default)
        if isinstance(value, str) and not value.strip():
            raise ConfigError(self.key(name), "must not be empty")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _MISSING) -> Any:
        value = self.text(name, default)
        if value not in choices:
            listed = ", ".join(f'"{c}"' for c in choices)
            raise ConfigError(self.key(name), f"expected one of {listed}, got {value!r}")
        return value

    def integer(
        self, name: str, default: Any = _MISSING, minimum: int = 1, maximum: int | None = None
    ) -> Any:
        value = self._get(name, (int,), "a whole number", default)
        if value is not None and value < minimum:
            raise ConfigError(self.key(name), f"must be at least {minimum}, got {value}")
        if value is not None and maximum is not None and value > maximum:
            raise ConfigError(self.key(name), f"must be at most {maximum}, got {value}")
        return value

    def number(self, name: str, default: Any = _MISSING) -> Any:
        """A positive number, whole or not."""
        value = self._get(name, (int, float), "a number", default)
        if value is not None and value <= 0:
            raise ConfigError(self.key(name), f"must be more than zero, got {value}")
        return value if value is None else float(value)

    def fraction(self, name: str, default: Any = _MISSING) -> Any:
        """A number above 0 and at most 1."""
        value = self._get(name, (int, float), "a number", default)
        if not 0 < value <= 1:
            raise ConfigError(self.key(name), f"must be above 0 and at most 1, got {value}")
        return float(value)

    def flag(self, name: str, default: Any = _MISSING) -> Any:
        return self._get(name, (bool,), "true or false", default)

    def duration(self, name: str, default: Any = _MISSING) -> Any:
        value = self.text(name, default)
        if not isinstance(value, str):
            return value
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            raise ConfigError(self.key(name), str(e)) from None
        if seconds <= 0:
            raise ConfigError(self.key(name), "must be longer than zero")
        return seconds

    def strings(self, name: str, default: Any = _MISSING, *, nonempty: bool = False) -> Any:
        value = self._get(name, (list,), "a list of strings", default)
        if value is default:
            return value
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise ConfigError(f"{self.key(name)}[{i}]", "expected a non-empty string")
        if nonempty and not value:
            raise ConfigError(self.key(name), "must list at least one")
        return tuple(value)

    def table(self, name: str) -> _Table:
        value = self._get(name, (dict,), "a table", {})
        return _Table(value, self.key(name), self.base, self.secrets)

    def tables(self, name: str) -> list[_Table]:
        value = self._get(name, (list,), "an array of tables ([[...]])", [])
        return [
            _Table(item, f"{self.key(name)}[{i}]", self.base, self.secrets)
            for i, item in enumerate(value)
        ]

    def secret(
        self, name: str, *, required: bool, check: Callable[[str], str | None] | None = None
    ) -> Secret | None:
        """``name``, ``name_env`` or ``name_file``: exactly one of the three. ``check``
        says what is wrong with the value, if anything; it runs only on a value read, as
        a variable or file is only when the table reads secrets."""
        given = [k for k in (name, f"{name}_env", f"{name}_file") if k in self.data]
        self.used.update((name, f"{name}_env", f"{name}_file"))
        if len(given) > 1:
            raise ConfigError(self.key(name), f"give only one of {', '.join(given)}")
        if not given:
            if required:
                raise ConfigError(self.key(name), f"is required (or {name}_env, {name}_file)")
            return None
        key = given[0]
        source = self.text(key)
        if key != name and not self.secrets:
            return UnreadSecret(self.key(key))
        value = self._secret_value(key, source)
        problem = check(value) if check is not None else None
        if problem is not None:
            raise ConfigError(self.key(name), problem)
        return Secret(value)

    def _secret_value(self, key: str, source: str) -> str:
        """The secret ``key`` holds: ``source`` itself, or the variable or file it names."""
        if key.endswith("_env"):
            value = os.environ.get(source)
            if not value:
                raise ConfigError(self.key(key), f"environment variable {source} is not set")
            return value
        if key.endswith("_file"):
            path = self.base / os.path.expandvars(source)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                reason = e.strerror if isinstance(e, OSError) and e.strerror else "unreadable"
                raise ConfigError(self.key(key), f"cannot read {path}: {reason}") from None
            text = text.removesuffix("\n").removesuffix("\r")
            if not text:
                raise ConfigError(self.key(key), f"{path} is empty")
            return text
        return source

    def finish(self) -> None:
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            raise ConfigError(self.key(unknown[0]), "unknown key")


def _shown(value: object) -> str:
    """A wrong value as the watchlist spells it: a number or boolean itself (TOML's
    ``true``, not Python's ``True``), anything else by its kind."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, int | float) else _kind(value)


def _kind(value: object) -> str:
    names = {str: "a string", int: "a number", float: "a number", bool: "a boolean"}
    names |= {list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _state_dir(base: Path) -> Path:
    """systemd's StateDirectory anchors the database so the watchlist can stay read-only."""
    state = os.environ.get("STATE_DIRECTORY")
    return Path(state.split(":")[0]) if state else base


def _monitor(t: _Table) -> MonitorConfig:
    d = MonitorConfig(database=Path("newsmon.db"))
    cfg = MonitorConfig(
        database=_state_dir(t.base) / t.text("database", "newsmon.db"),
        interval=t.duration("interval", d.interval),
        min_interval=t.duration("min_interval", d.min_interval),
        max_interval=t.duration("max_interval", d.max_interval),
        adaptive=t.flag("adaptive", d.adaptive),
        concurrency=t.integer("concurrency", d.concurrency),
        per_host=t.integer("per_host", d.per_host),
        fetch_articles=t.flag("fetch_articles", d.fetch_articles),
        user_agent=t.text("user_agent", d.user_agent),
        durability=t.choice("durability", ("process", "power"), d.durability),
        notices=t.strings("notices", d.notices),
        first_poll_max_age=t.duration("first_poll_max_age", d.first_poll_max_age),
        feed_max_bytes=t.integer("feed_max_bytes", d.feed_max_bytes),
        page_max_bytes=t.integer("page_max_bytes", d.page_max_bytes),
        timeout=t.duration("timeout", d.timeout),
        extract_workers=t.integer("extract_workers", d.extract_workers, minimum=0),
        extract_timeout=t.duration("extract_timeout", d.extract_timeout),
        parse_timeout=t.duration("parse_timeout", d.parse_timeout),
        allow_networks=_networks(t, "allow_networks"),
        proxy=_proxy(t, "proxy"),
        max_entries=t.integer("max_entries", d.max_entries, minimum=1),
        cluster_threshold=t.fraction("cluster_threshold", d.cluster_threshold),
        cluster_window=t.duration("cluster_window", d.cluster_window),
        retention=t.duration("retention", d.retention),
        metrics=_listen_address(t, "metrics"),
    )
    t.finish()
    if cfg.cluster_window > cfg.retention:
        # fingerprints are pruned with the bodies, so a longer window would find nothing
        raise ConfigError(t.key("cluster_window"), "is longer than retention")
    if cfg.min_interval > cfg.max_interval:
        raise ConfigError(t.key("min_interval"), "is longer than max_interval")
    return cfg


def _networks(t: _Table, name: str) -> tuple[Network, ...]:
    networks = []
    for i, text in enumerate(t.strings(name, ())):
        try:
            networks.append(ipaddress.ip_network(text.strip()))
        except ValueError:
            raise ConfigError(
                f"{t.key(name)}[{i}]", f"expected a network such as 10.1.0.0/16, got {text!r}"
            ) from None
    return tuple(networks)


def _url_problem(url: str, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """What keeps ``url`` from being an absolute URL of one of ``schemes`` with a host
    (and a port, if any, that exists), or None: found here rather than at the first
    poll or alert, where it is an error per attempt."""
    expected = " or ".join(f"{scheme}://" for scheme in schemes)
    try:
        parsed = urlsplit(url)
        parsed.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        return f"expected an {expected} URL with a valid port"
    if parsed.scheme.lower() not in schemes:
        return f"expected an {expected} URL"
    if not parsed.hostname:
        return f"expected an {expected} URL with a host"
    return None


def _proxy(t: _Table, name: str) -> str | None:
    """The value is never echoed: a proxy URL may carry a password."""
    url: str | None = t.text(name, None)
    problem = None if url is None else _url_problem(url, ("http",))
    if problem is not None:
        raise ConfigError(t.key(name), problem)
    return url


def _secret_url(t: _Table, name: str) -> Secret:
    """A notifier's URL; never echoed, as it may carry a token (Slack's do)."""
    url = t.secret(name, required=True, check=_url_problem)
    assert url is not None
    return url


def _address(path: str, value: str) -> None:
    """``value`` (at key ``path``) is an email address, as the notifier reads it to address
    the SMTP envelope."""
    from monitor.notify.email import bare_address  # its mail libraries, only when used

    try:
        bare_address(value)
    except ValueError as e:
        raise ConfigError(path, str(e)) from None


def _listen_address(t: _Table, name: str) -> tuple[str, int] | None:
    """An address like 127.0.0.1:9464 or [::1]:9464; port 0 takes any free port."""
    value = t.text(name, None)
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(t.key(name), f'expected "host:port", got {value!r}')
    return host, int(port)


def _feed(t: _Table, default_interval: float, default_adaptive: bool) -> FeedConfig:
    url = t.text("url")
    problem = _url_problem(url)
    if problem is not None:
        raise ConfigError(t.key("url"), f"{problem}, got {url!r}")
    feed = FeedConfig(
        url=url,
        name=t.text("name", None),
        interval=t.duration("interval", default_interval),
        tags=t.strings("tags", ()),
        enabled=t.flag("enabled", True),
        adaptive=t.flag("adaptive", default_adaptive),
        username=t.text("username", None),
        password=t.secret("password", required=False),
    )
    t.finish()
    return feed


def _rule(t: _Table) -> RuleConfig:
    examples = t.table("examples")
    rule = RuleConfig(
        name=t.text("name"),
        query=t.text("query"),
        notify=t.strings("notify", nonempty=True),
        feeds=t.strings("feeds", ("*",), nonempty=True),
        enabled=t.flag("enabled", True),
        max_per_hour=t.integer("max_per_hour", None),
        examples_match=examples.strings("match", ()),
        examples_no_match=examples.strings("no_match", ()),
        per_story=t.flag("per_story", True),
    )
    examples.finish()
    t.finish()
    return rule


# Slack allows about one message per second per webhook (its rate-limit documentation).
_DEFAULT_RATE: Final = {"slack": 1.0}


def _lane(t: _Table, kind: str) -> LanePolicy:
    """The delivery keys every notifier table accepts."""
    d = LanePolicy()
    return LanePolicy(
        max_age=t.duration("max_age", d.max_age),
        rate=t.number("rate", _DEFAULT_RATE.get(kind)),
        burst=t.integer("burst", d.burst),
        digest=t.duration("digest", None),
        pause_after=t.integer("pause_after", d.pause_after),
    )


def _notifier(t: _Table, name: str) -> NotifierConfig:
    kind = t.choice("type", ("console", "webhook", "slack", "email"))
    cfg: NotifierConfig
    if kind == "console":
        cfg = ConsoleNotifierConfig(name)
    elif kind == "webhook":
        url = _secret_url(t, "url")
        cfg = WebhookNotifierConfig(
            name, url, t.secret("secret", required=False), t.duration("timeout", 30.0)
        )
    elif kind == "slack":
        cfg = SlackNotifierConfig(name, _secret_url(t, "url"), t.duration("timeout", 30.0))
    else:
        security = t.choice("security", ("starttls", "tls", "none"), "starttls")
        default_port = {"starttls": 587, "tls": 465, "none": 25}[security]
        sender, to = t.text("from"), t.strings("to", nonempty=True)
        _address(t.key("from"), sender)
        for i, address in enumerate(to):
            _address(f"{t.key('to')}[{i}]", address)
        cfg = EmailNotifierConfig(
            name,
            host=t.text("host"),
            port=t.integer("port", default_port, maximum=65535),
            security=security,
            sender=sender,
            to=to,
            username=t.text("username", None),
            password=t.secret("password", required=False),
            timeout=t.duration("timeout", 30.0),
        )
        if cfg.password is not None and cfg.username is None:
            raise ConfigError(t.key("username"), "is required with a password")
    cfg = replace(cfg, lane=_lane(t, kind))
    t.finish()
    return cfg


def _entities(t: _Table) -> dict[str, tuple[str, ...]]:
    for name in t.data:  # one a query cannot write as @name would be unusable
        if not ENTITY_NAME.fullmatch(name):
            raise ConfigError(t.key(name), "an entity's name is letters a-z, digits, - and _")
    entities = {name: t.strings(name, nonempty=True) for name in t.data}
    t.finish()
    return entities


def _unique(items: list[tuple[str, str]], what: str) -> None:
    seen: set[str] = set()
    for path, value in items:
        if value in seen:
            raise ConfigError(path, f"duplicate {what} {value!r}")
        seen.add(value)


def _one_entry_per_feed(feeds: tuple[FeedConfig, ...]) -> None:
    """Two entries for one feed would poll it twice."""
    first: dict[tuple[object, ...], int] = {}
    for i, feed in enumerate(feeds):
        key = _feed_identity(feed)
        if key in first:
            shown = without_password(feed.url)
            raise ConfigError(f"feeds[{i}].url", f"the same feed as feeds[{first[key]}]: {shown}")
        first[key] = i


def _feed_identity(feed: FeedConfig) -> tuple[object, ...]:
    """The feed's URL but for what no server tells apart (the scheme's and the host's
    case, a default port, a fragment), and the user who reads it (in the URL or in
    ``username``): a private feed read as two users is two feeds. Its query is kept as
    written: a parameter that tracks an article's reader (``ocid``) may choose a feed."""
    parts = urlsplit(feed.url)
    scheme = parts.scheme.lower()
    port = None if parts.port == DEFAULT_PORTS.get(scheme) else parts.port
    host = (parts.hostname or "").rstrip(".")
    return (scheme, host, port, parts.path or "/", parts.query, parts.username or feed.username)


def _scopes(
    feeds: tuple[FeedConfig, ...], rules: tuple[RuleConfig, ...]
) -> dict[str, frozenset[str]]:
    """Which enabled rules watch each feed; a selector is a feed name or a tag."""
    names = {f.label for f in feeds}
    tags = {tag for f in feeds for tag in f.tags}
    for i, rule in enumerate(rules):
        for j, selector in enumerate(rule.feeds):
            path = f"rules[{i}].feeds[{j}]"
            if selector == "*":
                continue
            if selector in names and selector in tags:
                raise ConfigError(path, f"{selector!r} is both a feed name and a tag")
            if selector not in names and selector not in tags:
                raise ConfigError(path, f"no feed name or tag {selector!r}")
    # Rules for every feed share one set: a set per feed would hold every such rule's
    # name again (10,000 feeds x 10,000 rules: gigabytes; docs/performance.md).
    everywhere = frozenset(r.name for r in rules if r.enabled and "*" in r.feeds)
    chosen: dict[str, set[str]] = {}  # feed name or tag -> rules naming it
    for rule in rules:
        for selector in rule.feeds if rule.enabled else ():
            chosen.setdefault(selector, set()).add(rule.name)
    scopes: dict[str, frozenset[str]] = {}
    for feed in feeds:
        extra = set().union(*(chosen.get(key, ()) for key in (feed.label, *feed.tags)))
        scopes[feed.url] = everywhere | extra if extra - everywhere else everywhere
    return scopes


def _compile(rules: tuple[RuleConfig, ...], entities: Mapping[str, tuple[str, ...]]) -> RuleIndex:
    try:
        return compile_rules({r.name: r.query for r in rules}, entities)
    except RuleCompileError as e:
        if e.rule is not None:
            at = next(i for i, r in enumerate(rules) if r.name == e.rule)
            raise ConfigError(f"rules[{at}].query", str(e.error)) from None
        raise ConfigError(f"entities.{e.entity}[{e.form_index}]", str(e.error)) from None


def _check_examples(rules: tuple[RuleConfig, ...], index: RuleIndex) -> None:
    """A rule's own examples are its self-test: a rule that fails them is a config error."""
    for i, rule in enumerate(rules):
        for key, texts, expected in (
            ("match", rule.examples_match, True),
            ("no_match", rule.examples_no_match, False),
        ):
            for j, text in enumerate(texts):
                found = bool(index.match(Document("", "", text), only={rule.name}))
                if found != expected:
                    verb = "does not match" if expected else "matches"
                    raise ConfigError(
                        f"rules[{i}].examples.{key}[{j}]", f"the query {verb} this example"
                    )


def parse_config(data: dict[str, Any], path: Path, *, secrets: bool = True) -> Config:
    """Validate an already-parsed TOML document; relative paths anchor to ``path``'s folder.
    ``secrets``: as for ``load_config``."""
    root = _Table(data, "", path.parent, secrets)
    monitor = _monitor(root.table("monitor"))
    feeds = tuple(_feed(t, monitor.interval, monitor.adaptive) for t in root.tables("feeds"))
    _one_entry_per_feed(feeds)
    _unique([(f"feeds[{i}].name", f.name) for i, f in enumerate(feeds) if f.name], "feed name")
    notifier_table = root.table("notifiers")
    notifiers = {
        name: _notifier(notifier_table.table(name), name) for name in list(notifier_table.data)
    }
    notifier_table.finish()
    rules = tuple(_rule(t) for t in root.tables("rules"))
    _unique([(f"rules[{i}].name", r.name) for i, r in enumerate(rules)], "rule name")
    for i, rule in enumerate(rules):
        for j, target in enumerate(rule.notify):
            if target not in notifiers:
                raise ConfigError(f"rules[{i}].notify[{j}]", f'no notifier named "{target}"')
    for j, target in enumerate(monitor.notices):
        if target not in notifiers:
            raise ConfigError(f"monitor.notices[{j}]", f'no notifier named "{target}"')
    entities = _entities(root.table("entities"))
    root.finish()
    index = _compile(rules, entities)
    _check_examples(rules, index)
    return Config(
        path=path,
        monitor=monitor,
        feeds=feeds,
        entities=entities,
        rules=rules,
        notifiers=notifiers,
        index=index,
        scopes=_scopes(feeds, rules),
        routes={r.name: r.notify for r in rules},
        enabled={f.url: f for f in feeds if f.enabled},
        per_copy=frozenset(r.name for r in rules if not r.per_story),
        caps={r.name: r.max_per_hour for r in rules if r.max_per_hour is not None},
    )


def load_config(path: Path, *, secrets: bool = True) -> Config:
    """Read and validate the watchlist at ``path``; raises ConfigError.

    ``secrets=False`` leaves the secrets kept in variables and files unread (an
    ``UnreadSecret`` each): a command that sends nothing then answers without the
    service's environment, where a missing variable would otherwise stop it."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError("", f"cannot read {path}: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("", f"{path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", f"{path}: TOML syntax error: {e}") from None
    if not data:  # a file emptied by accident would drop every feed and pending alert
        raise EmptyWatchlist("", f"{path} is empty: expected [[feeds]], [[rules]], [notifiers]")
    return parse_config(data, path.resolve(), secrets=secrets)


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """What the watchlist may say but its operator should know: `newsmon check` prints
    it, the daemon logs it when it starts or a reload brings it."""

    path: str  # the dotted key path, as a ConfigError's
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def config_warnings(config: Config) -> list[ConfigWarning]:
    """What ``config`` may do but not unsaid. So far one thing: an email notifier with
    security "none" and a password sends the password where anyone on the way can read
    it (AUTH PLAIN and LOGIN are base64), which RFC 4954 4 wants protected. Allowed, as
    a relay on a trusted network may offer no TLS, but not silently; not for a loopback
    host, which crosses no network (Go's net/smtp, which refuses the rest, allows that
    one too)."""
    return [
        ConfigWarning(
            f"notifiers.{name}.security",
            f"none sends the SMTP password to {cfg.host} unencrypted; use starttls or tls"
            " unless every network on the way is trusted",
        )
        for name, cfg in config.notifiers.items()
        if isinstance(cfg, EmailNotifierConfig)
        and cfg.security == "none"
        and cfg.password is not None
        and not _loopback(cfg.host)
    ]


def _loopback(host: str) -> bool:
    """``host`` is this machine: localhost, 127.0.0.0/8 or ::1, bracketed or not, or
    IPv4-mapped (::ffff:127.0.0.1). Not a name under localhost: a resolver without RFC
    6761's rule may ask DNS for it."""
    name = host.lower().rstrip(".").removeprefix("[").removesuffix("]")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def require_runnable(config: Config) -> None:
    """A watchlist the daemon runs must list a feed and a rule: one that lists neither is
    a file cut short or overwritten (rules and notifiers come last in one), and running
    it would stop every poll or alert (and a reload, cancel the alerts queued for the
    notifiers gone with them)."""
    for key, listed, pause in [
        ("feeds", config.feeds, "to pause a feed, keep it with enabled = false"),
        ("rules", config.rules, "to only collect stories, keep a rule with enabled = false"),
    ]:
        if not listed:
            raise ConfigError(
                key, f"none listed: the daemon needs at least one [[{key}]] table ({pause})"
            )
